"""docs/configuration.md is generated from the schema and must match it."""

from configs import reference
from configs.schema import ProjectConfig


def test_the_committed_reference_matches_the_schema():
    assert reference.REFERENCE.read_text() == reference.render(), "run `make docs`"


def test_every_key_of_every_section_is_documented():
    text = reference.render()
    for key in ("name", "data.source", "contract.columns.<name>.aliases",
                "tuning.search_space", "monitoring.simulation.rate_per_s", "schedule"):  # fmt: skip
        assert f"| `{key}` |" in text, key
    assert text.count("\n## `") >= 10
    assert len(ProjectConfig.model_fields) == text.split("## `top level`")[1].split("\n## ")[
        0
    ].count("\n| `")


def test_check_fails_on_a_stale_file(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    monkeypatch.setattr(reference, "REFERENCE", stale)
    assert reference.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "is stale" in err and "next: make docs" in err
    assert reference.main([]) == 0 and reference.main(["--check"]) == 0
