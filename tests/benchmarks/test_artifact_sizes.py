"""§10 of RESULTS.md: the artifact sizes it reports, and its replacement in place."""

from __future__ import annotations

from benchmarks.artifact import HEADING, markdown, replace_section, run


def test_the_section_reports_the_function_and_the_layer() -> None:
    sizes = run()
    assert 100_000 < sizes.function.zipped <= 250_000
    assert sizes.layer.files < sizes.function.files  # all but the handler
    assert sizes.compiled.zipped > sizes.function.zipped
    assert sizes.left_out.zipped > 40 * sizes.function.zipped  # boto3 and botocore
    text = "\n".join(markdown(sizes))
    assert text.startswith(HEADING)
    assert (
        f"| the example's function (`sam build`, `make package`) | {sizes.function.files} |" in text
    )
    assert "| the layer (`make layer`) |" in text


def test_the_section_replaces_its_old_self_and_nothing_else() -> None:
    section = [HEADING, "", "new", ""]
    before = "# R\n\n## 8. Sim\n\nx\n\n"
    assert replace_section(before, section) == "# R\n\n## 8. Sim\n\nx\n\n" + HEADING + "\n\nnew\n"
    old = before + HEADING + "\n\nold\n"
    assert replace_section(old, section) == replace_section(before, section)
    later = old + "\n## 10. Later\n\ny\n"
    assert replace_section(later, section) == before + HEADING + "\n\nnew\n\n## 10. Later\n\ny\n"
