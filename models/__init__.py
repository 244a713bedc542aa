"""Model definitions: scikit-learn compatible estimators."""
