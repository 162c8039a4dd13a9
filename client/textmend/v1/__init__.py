"""Generated from proto/textmend/v1/textmend.proto."""
