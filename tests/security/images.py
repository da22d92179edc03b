"""Real photos, built in memory, carrying what a phone writes into them."""

from __future__ import annotations

import io

from PIL import ExifTags, Image

# Where the photo was taken (a street in Riyadh), as a phone's camera records it.
LATITUDE = (24.0, 42.0, 36.5)
LONGITUDE = (46.0, 40.0, 12.25)
CAMERA = "PhoneMaker X12"
COMMENT = b"taken at home of the applicant"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>CreatorTool=Gallery</rdf:RDF></x:xmpmeta>'
# Text that must not survive in a cleaned file, in any form.
TRACES = (b"Exif", b"GPS", CAMERA.encode(), COMMENT, b"xmpmeta", b"CreatorTool")


def phone_exif(*, orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = CAMERA
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = LONGITUDE
    return exif


def photo(fmt: str = "JPEG", size: tuple[int, int] = (120, 80), *, orientation: int = 1) -> bytes:
    """A photo with EXIF (camera, GPS position, orientation) and XMP; JPEG also a comment."""
    image = Image.new("RGB", size, (180, 40, 40))
    for x in range(size[0] // 2):  # a left half of another colour, to see which way is up
        for y in range(size[1]):
            image.putpixel((x, y), (20, 40, 200))
    options: dict[str, object] = {"exif": phone_exif(orientation=orientation), "xmp": XMP}
    if fmt == "JPEG":
        options["comment"] = COMMENT
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def metadata_of(data: bytes) -> dict[str, object]:
    """What Pillow reads from an image beyond its pixels (empty for a clean image)."""
    with Image.open(io.BytesIO(data)) as image:
        found: dict[str, object] = {
            key: value
            for key, value in image.info.items()
            if key in ("exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment")
        }
        exif = image.getexif()
        if len(exif):
            found["tags"] = dict(exif)
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        if gps:
            found["gps"] = dict(gps)
    return found
