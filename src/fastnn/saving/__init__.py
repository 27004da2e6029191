"""fastnn.saving: Keras 3's file formats (keras.saving)."""
