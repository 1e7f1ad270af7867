"""Reading QR codes back in tests (OpenCV): one detector fails on about 1 in 80 valid codes (seen on links that
differ only in their port), so the text is taken from the first of a few scales, then the Aruco-based detector."""

import cv2
import numpy as np

SCALES = (1.0, 0.5, 0.75, 1.5)


def qr_text(image: np.ndarray) -> str:
    """The text of the QR code in an RGB or BGR image array ('' when none is read)."""
    for scale in SCALES:
        scaled = image if scale == 1.0 else cv2.resize(
            image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)
        text, _, _ = cv2.QRCodeDetector().detectAndDecode(scaled)
        if text:
            return text
    text, _, _ = cv2.QRCodeDetectorAruco().detectAndDecode(image)
    return text


def qr_text_of_file(encoded: bytes) -> str:
    """The text of the QR code in an encoded image file (PNG, JPEG...)."""
    return qr_text(cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR))
