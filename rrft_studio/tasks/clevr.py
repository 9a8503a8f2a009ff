"""What the CLEVR-like families (counting, spatial transformation) share: the colour palette of CLEVR's renders."""

# RGB values from the CLEVR rendering properties.
PALETTE = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
