"""Benchmarks run (no timings asserted): each protocol workload over two TCP processes,
with the measured cost equal to the declared one."""

import pytest

from benchmarks.bench_protocols import WORKLOADS, measure


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_bench_protocols_quick(name):
    row = measure(name, quick=True, repeats=1)
    assert row["declared==measured"] is True
    assert row["online_s"] > 0


def test_results_section_is_spliced_into_this_repos_readme_only(tmp_path):
    from benchmarks.vs_report import README_BEGIN, README_END, splice_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{README_BEGIN}\nold\n{README_END}\n\nrest\n")
    out = tmp_path / "benchmarks" / "results"
    out.mkdir(parents=True)
    assert splice_readme(out, "## Results\nnew table")
    text = readme.read_text()
    assert "old" not in text and "new table" in text and text.endswith(f"{README_END}\n\nrest\n")
    assert splice_readme(out, "again") and "new table" not in readme.read_text()
    assert not splice_readme(tmp_path / "elsewhere", "no")  # another output folder
    readme.write_text("no markers\n")
    assert not splice_readme(out, "no") and readme.read_text() == "no markers\n"
