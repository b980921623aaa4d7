"""Network building blocks shared by encoders and methods: pooling layers, projection heads, EMA helpers, schedules."""
