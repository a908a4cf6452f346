"""The Jinja sandbox refuses escapes and anything that could hurt the server, quickly."""

from __future__ import annotations

import time

import pytest

from events import templating
from events.templating import RenderFailed, TemplateInvalid, check_template, render

CONTEXT = {
    "method": "POST",
    "headers": {"content-type": "application/json"},
    "body": {"model": "recs", "list": [1, 2, 3]},
    "query": {},
}


def test_render_fills_a_json_template_from_the_request():
    out = render('{"event": "m.{{ body.model }}", "n": {{ body["list"]|tojson }}}', CONTEXT)

    assert out == '{"event": "m.recs", "n": [1,2,3]}'


def test_render_treats_a_missing_attribute_as_empty_like_prefect():
    assert render("[{{ body.missing.deeper }}]", CONTEXT) == "[]"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self._TemplateReference__context }}",
        "{{ body.__class__ }}",
        "{{ namespace.__init__ }}",
        "{{ joiner.__init__.__globals__.os }}",
    ],
)
def test_render_refuses_attribute_escapes(template):
    with pytest.raises(RenderFailed, match="unsafe"):
        render(template, CONTEXT)


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(10**9) %}x{% endfor %}",
        "{% for i in range(101) %}x{% endfor %}",
        "{{ 'a' * 10**9 }}",
        "{{ 'a' * 1000000 * 1000 }}",
        "{{ (range(100)|list) * 10**7 }}",
        "{{ 10**100000 }}",
        "{{ 'a'.center(10**9) }}",
        "{{ 'a'|center(10**9) }}",
        "{{ '%1000000000d' % 1 }}",
        "{{ '{:>1000000000}'.format(1) }}",
        "{{ '{x:>9999999}'.format_map({'x': 1}) }}",
        "{{ ('x' * 100000)|replace('x', 'y' * 100000) }}",
        "{{ (range(100)|list)|join('x' * 1000000) }}",
        "{{ ('a\n' * 100000)|indent(100000) }}",
        "{% set s = 'a' * 1000000 %}{% set t = s ~ s %}{{ t }}",
        "{% set s = 'a' * 100000 %}{% set x %}{% for i in range(100) %}"
        "{% for j in range(100) %}{{ s }}{% endfor %}{% endfor %}{% endset %}{{ x|length }}",
        "{% macro f(n) %}{% for i in range(100) %}{{ f(n) }}{% endfor %}{% endmacro %}{{ f(1) }}",
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{{ lipsum(10**6) }}",
        "{{ body|tojson(indent=100000) }}",
        # Widths and precisions taken from the arguments (the security review's freezing case).
        "{{ ('{0:{1}}' * 8000).format('a', 100000) }}",
        "{{ '{x:{w}}'.format_map({'x': 'a', 'w': 10000000}) }}",
        "{{ ('%*s' * 8000) % ((100000, 'a') * 8000) }}",
        "{{ ('%*s' * 20)|format(" + "100000, 'a', " * 19 + "100000, 'a') }}",
        # Containers that share one big list: written out, they would be huge.
        *(
            "{% set a = ['x' * 1000] * 1000 %}{% set b = [a] * 1000 %}" + out
            for out in (
                "{{ b }}",
                "{{ b|tojson }}",
                "{{ b|join(',') }}",
                "{{ ','.join(b) }}",
                "{{ b ~ '' }}",
                "{{ '%s' % (b,) }}",
                "{{ '{}'.format(b) }}",
                "{{ b|string }}",
                "{{ b|pprint }}",
            )
        ),
    ],
)
def test_render_refuses_work_that_would_hurt_the_server_quickly(template):
    # The work the render did, in this thread's CPU time: wall time also counts the other
    # processes of a loaded machine (a 10 ms refusal took 1.7 s of wall time beside two suites).
    started = time.thread_time()

    with pytest.raises(RenderFailed):
        render(template, CONTEXT)

    assert time.thread_time() - started < 1.0


def test_render_refuses_mutating_the_request():
    with pytest.raises(RenderFailed):
        render("{{ body['list'].append(4) }}", CONTEXT)
    assert CONTEXT["body"]["list"] == [1, 2, 3]


def test_render_stops_at_the_time_limit():
    # Twenty 100-item loops nested two deep, in macros, stay under the iteration budget but
    # would take long; the deadline ends the render.
    template = (
        "{% macro g() %}{% for i in range(100) %}{% for j in range(100) %}{{ i ~ j }}"
        "{% endfor %}{% endfor %}{% endmacro %}{{ g() }}{{ g() }}"
    )
    started = time.thread_time()

    with pytest.raises(RenderFailed):
        render(template, CONTEXT, timeout=0.01)

    assert time.thread_time() - started < 1.0


def test_render_limits_output_size():
    with pytest.raises(RenderFailed, match="longer than 10 characters"):
        render("{% for i in range(11) %}x{% endfor %}", CONTEXT, max_output=10)


def test_check_template_reports_syntax_errors_with_the_line():
    with pytest.raises(TemplateInvalid, match="line 2"):
        check_template("ok\n{% for %}")


def test_check_template_enforces_prefects_loop_limits():
    nested = "{% for a in x %}{% for b in x %}{% for c in x %}{% endfor %}{% endfor %}{% endfor %}"
    many = "{% for a in x %}{% endfor %}" * (templating.MAX_LOOPS + 1)

    with pytest.raises(TemplateInvalid, match="nested 3 deep"):
        check_template(nested)
    with pytest.raises(TemplateInvalid, match="for loops"):
        check_template(many)


def test_check_template_refuses_a_huge_template():
    with pytest.raises(TemplateInvalid, match="longer than"):
        check_template("x" * (templating.MAX_TEMPLATE_CHARS + 1))


def test_format_widths_from_arguments_still_work_when_small():
    out = render("{{ '{0:>{1}}|'.format('a', 3) }}{{ '%*d' % (4, 7) }}", CONTEXT)

    assert out == "  a|   7"


def test_the_request_body_of_the_freezing_template_is_refused_quickly():
    context = {**CONTEXT, "body": {"f": "{0:{1}}", "n": 100000}}
    started = time.thread_time()

    with pytest.raises(RenderFailed, match="would build a value"):
        render("{{ (body.f * 8000).format('a', body.n) }}", context)

    assert time.thread_time() - started < 1.0
