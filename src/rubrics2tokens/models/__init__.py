"""Model loading, including the embedded offline default policy."""
from rubrics2tokens.models.loading import DEFAULT_POLICY, MINILM_BACKBONE, load_policy, load_tokenizer, resolve_model_path

__all__ = ["DEFAULT_POLICY", "MINILM_BACKBONE", "load_policy", "load_tokenizer", "resolve_model_path"]
