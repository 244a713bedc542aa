"""Models: the families and their estimators, tuning, evaluation, selection and the promotion
gate, explanations, model cards, and the MLflow registry with its drift references."""
