"""RDT (thu-ml/RoboticsDiffusionTransformer) in Atlas: its network under its own module names, its
release folder, its schedules, and the `rdt` policy that trains it through Atlas's loop."""
