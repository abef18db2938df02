//! aiobs-exporter-default (under construction).
