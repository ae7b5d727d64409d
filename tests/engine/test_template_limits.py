"""A field value's template cannot make the worker build huge values."""

import pytest

from flows.templating import TemplateError, render_value


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            '{{ "a" * 10**10 }}',
            "template error: '*' would build a value of 10,000,000,000 items; the limit is 1,000,000",
        ),
        (
            "{{ [0] * 2000000 }}",
            "template error: '*' would build a value of 2,000,000 items; the limit is 1,000,000",
        ),
        ("{{ 10 ** 100000 }}", "template error: '**' would build a number of more than 4096 bits"),
        (
            "{% for i in range(100000) %}x{% endfor %}",
            "template error: range() is limited to 10,000 items",
        ),
        (
            '{% for i in range(5000) %}{{ "y" * 500 }}{% endfor %}',
            "template error: the rendered text is longer than 1,000,000 characters",
        ),
    ],
)
def test_templates_that_would_build_huge_values_fail_with_a_clear_error(template, message):
    with pytest.raises(TemplateError) as error:
        render_value(template, {"event": {}})
    assert str(error.value) == message


def test_ordinary_arithmetic_and_repetition_still_work():
    context = {"event": {"n": 4}}
    assert (
        render_value('{{ "ab" * 3 }} {{ event.n * 2 }} {{ 2 ** 10 }}', context) == "ababab 8 1024"
    )
    assert render_value("{{ [1] * 3 }}", context) == [1, 1, 1]
    assert render_value("{% for i in range(3) %}{{ i }}{% endfor %}", context) == "012"
