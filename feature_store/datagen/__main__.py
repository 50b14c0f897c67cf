"""``python -m feature_store.datagen``: the generator's command line, without Feast."""

from feature_store.datagen.files import main

main()
