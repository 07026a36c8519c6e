"""Images and media: base images from recipes or an ISO, seed ISOs, answer files, prime ISOs."""
