"""VTK image files (``.vti``) of phase labels, for ParaView: one cell per pixel or voxel.

MCRpy writes its 3D results for ParaView through pyevtk; this writes the same kind of file (VTK
XML ImageData, the labels as cell data named ``phase``) without a dependency. Array axis 0 is
VTK's x, axis 1 its y and axis 2 its z, as pyevtk's ``imageToVTK`` lays out a NumPy array, so a
volume looks the same in ParaView whichever of the two wrote it; a 2D structure is one cell thick
in z.
"""

from __future__ import annotations

from typing import IO

import numpy as np

from mcrgpu.errors import InvalidInputError

__all__ = ["write_vti"]

_VTK_TYPES = {np.dtype(np.uint8): "UInt8", np.dtype(np.uint16): "UInt16", np.dtype(np.int32): "Int32",
              np.dtype(np.int64): "Int64"}


def write_vti(handle: IO[bytes], labels: np.ndarray, *, name: str = "phase") -> None:
    """Write ``labels`` ((H, W) or (D, H, W) integers) to ``handle`` as a VTK XML ImageData file.

    The values are stored raw (little-endian, appended after the XML, with a UInt64 byte count in
    front), as VTK's own writers do for large images; ParaView reads it with its "VTK ImageData"
    reader.

    Raises
    ------
    InvalidInputError
        ``labels`` is not 2D or 3D, or not of an integer type VTK stores.
    """
    labels = np.asarray(labels)
    vtk_type = _VTK_TYPES.get(np.dtype(labels.dtype.type))  # whatever the byte order
    if labels.ndim not in (2, 3) or vtk_type is None:
        raise InvalidInputError(
            f"A .vti file holds 2D or 3D labels of type {', '.join(str(t) for t in _VTK_TYPES)}; "
            f"received shape {labels.shape}, dtype {labels.dtype}"
        )
    cells = labels.shape + (1,) * (3 - labels.ndim)
    extent = " ".join(f"0 {n}" for n in cells)
    data = labels.astype(np.dtype(labels.dtype.type).newbyteorder("<"), copy=False).reshape(cells).ravel(order="F")
    header = (
        '<?xml version="1.0"?>\n'
        '<VTKFile type="ImageData" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n'
        f'  <ImageData WholeExtent="{extent}" Origin="0 0 0" Spacing="1 1 1">\n'
        f'    <Piece Extent="{extent}">\n'
        f'      <CellData Scalars="{name}">\n'
        f'        <DataArray type="{vtk_type}" Name="{name}" '
        'format="appended" offset="0"/>\n'
        "      </CellData>\n"
        "    </Piece>\n"
        "  </ImageData>\n"
        '  <AppendedData encoding="raw">\n'
        "   _"
    )
    handle.write(header.encode("ascii"))
    handle.write(np.uint64(data.nbytes).astype("<u8").tobytes())
    handle.write(data.tobytes())
    handle.write(b"\n  </AppendedData>\n</VTKFile>\n")
