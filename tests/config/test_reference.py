"""The README's config reference is generated from the schema, never hand-edited."""

from pathlib import Path

from atlas.config.reference import BEGIN, END, generate, replace_in

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_matches_the_schema():
    text = README.read_text()
    assert BEGIN in text and END in text
    assert replace_in(text) == text, "run: python -m atlas.config.reference --write README.md"


def test_every_section_and_a_known_field_are_documented():
    reference = generate()
    for key in ("training.learning_rate", "memory_optimization.dynamic_batch_size", "data_loading.num_workers",
                "training.ema.power", "eval.exec_horizon", "model.action_horizon"):
        assert f"`{key}`" in reference
