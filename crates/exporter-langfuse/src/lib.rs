//! aiobs-exporter-langfuse (under construction).
