"""The KIE.ai client: the only module family that speaks to KIE."""
