"""The fusion transformer over language, vision, state and noise/action tokens."""
