"""Stage 1: RASP programs, their vocabularies, inputs and independent references."""
