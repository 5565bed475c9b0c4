"""`python -m zerosearch …` (and `accelerate launch -m zerosearch train …`)."""

from zerosearch.cli import main

main()
