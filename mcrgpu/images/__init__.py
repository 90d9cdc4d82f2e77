"""Image tasks that run as TensorFlow SavedModels under the strategy."""
