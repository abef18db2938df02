//! aiobs-http (under construction).
