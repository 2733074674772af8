"""Policies: vision backbones, language encoders, fusion transformer, action heads → AtlasPolicy."""
