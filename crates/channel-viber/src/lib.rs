//! Viber REST Bot API channel. (being written).
