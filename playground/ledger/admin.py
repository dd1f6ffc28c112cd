"""Django admin for the ledger: entries and reported balances read-only
(corrections are adjustments, written by book.adjust), budgets and prices
per credit editable (a price without a team is the instance's)."""

from django.contrib import admin

from .models import Budget, CreditPrice, Entry, ProviderBalance


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ("kind", "team", "username", "provider", "model", "amount", "unit", "created_at")
    list_filter = ("kind", "provider", "unit")
    search_fields = ("username", "generation_uuid")
    date_hierarchy = "created_at"
    list_select_related = ("team",)
    show_full_result_count = False


@admin.register(ProviderBalance)
class ProviderBalanceAdmin(ReadOnlyAdmin):
    list_display = ("team", "provider", "amount", "unit", "seen_at")
    list_filter = ("provider",)
    list_select_related = ("team",)


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "team", "member", "provider", "amount", "unit", "period", "hard")
    list_filter = ("period", "hard", "provider")
    search_fields = ("team__name", "member__username")
    raw_id_fields = ("team", "member", "created_by")
    list_select_related = ("team", "member")


@admin.register(CreditPrice)
class CreditPriceAdmin(admin.ModelAdmin):
    list_display = ("provider", "team", "price", "updated_at")
    list_filter = ("provider",)
    raw_id_fields = ("team", "updated_by")
    list_select_related = ("team",)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.base_fields["team"].help_text = "Empty: the instance-wide price (a team's own price wins)."
        return form
