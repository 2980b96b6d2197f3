//! WhatsApp Cloud API channel (with the WhatsApp QR limit profile). (being written).
