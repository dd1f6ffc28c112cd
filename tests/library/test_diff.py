"""Any two versions diffed: the text (word or line level, escaped, with
ins/del marks) and the parameters (added, removed, changed, the model)."""

from django.urls import reverse

from playground.library.diff import Piece, params_diff, text_diff

from tests.library import util


def test_text_diff_by_word_and_by_line():
    assert text_diff("a red kite over dunes", "a blue kite over the dunes") == [
        Piece("same", "a "), Piece("del", "red"), Piece("ins", "blue"), Piece("same", " kite over "),
        Piece("ins", "the "), Piece("same", "dunes")]
    assert text_diff("one\ntwo\nthree", "one\n2\nthree", "line") == [
        Piece("same", "one\n"), Piece("del", "two\n"), Piece("ins", "2\n"), Piece("same", "three")]


def test_params_diff_names_added_removed_and_changed():
    rows = {r.name: (r.change, r.before, r.after) for r in params_diff({"a": 1, "b": 2, "c": 3}, {"b": 2, "c": 4, "d": 5})}
    assert rows == {"a": ("removed", 1, None), "b": ("same", 2, 2), "c": ("changed", 3, 4), "d": ("added", None, 5)}


def test_the_diff_page_marks_text_and_parameters_and_escapes_the_text(client_in, team, user):
    p = util.prompt(team, user, text="a <b>red</b> kite", params={"image_size": "square", "seed": 4})
    p.add_version(text="a <b>blue</b> kite", provider="kie", model="qwen",
                  params={"image_size": "square_hd", "acceleration_level": "high"}, by=user)
    page = client_in.get(reverse("prompt_diff", args=[p.uuid]) + "?a=1&b=2").content.decode()
    assert "<del>&lt;b&gt;red&lt;/b&gt;</del><ins>&lt;b&gt;blue&lt;/b&gt;</ins>" in page
    assert "<b>red" not in page
    assert '<tr class="changed" data-param="image_size"><td>image_size</td><td>square</td><td>square_hd</td><td>changed</td>' in page
    assert '<tr class="removed" data-param="seed"><td>seed</td><td>4</td><td>-</td><td>removed</td>' in page
    assert '<tr class="added" data-param="acceleration_level"><td>acceleration_level</td><td>-</td><td>high</td><td>added</td>' in page
    assert 'class="changed" data-testid="model-row"><td>Provider / model</td><td>KIE.ai &rarr; Seedream V4</td><td>KIE.ai &rarr; Qwen</td>' in page
    line = client_in.get(reverse("prompt_diff", args=[p.uuid]) + "?a=2&b=1&level=line").content.decode()
    assert "<del>a &lt;b&gt;blue&lt;/b&gt; kite</del><ins>a &lt;b&gt;red&lt;/b&gt; kite</ins>" in line
    assert client_in.get(reverse("prompt_diff", args=[p.uuid]) + "?a=1&b=9").status_code == 404
    assert client_in.get(reverse("prompt_diff", args=[p.uuid]) + "?a=x").status_code == 404
