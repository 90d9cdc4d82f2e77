"""Built-in image models that mcrgpu builds and exports as SavedModels."""
