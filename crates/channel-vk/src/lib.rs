//! VK Callback API and messages API channel. (being written).
