//! aiobs-exporter-cloud (under construction).
