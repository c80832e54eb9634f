"""Synthetic DICOM series written with pydicom from a NIfTI-like volume (tests only).

:func:`write_series` stores a (X, Y, Z) int16 volume, with a voxel -> RAS affine (any rotation)
and a rescale slope / intercept, as one MR Image Storage file per slice, so that a converter
that follows the DICOM standard gives back the same world geometry and values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

LPS = np.diag([-1.0, -1.0, 1.0])  # RAS <-> LPS (DICOM's patient coordinates)
PATIENT_NAME = "Quixote^Dulcinea"  # planted personal data: must never reach an output
PATIENT_BIRTH = "19230417"
PATIENT_ID = "PID-77341-XQ"


def oblique_affine(spacing=(0.9, 1.1, 2.5), angles=(0.3, -0.2, 0.15), origin=(-40, 25, 10.5)):
    """A voxel -> RAS affine whose axes are rotated (an oblique acquisition)."""
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    affine[:3, 3] = origin
    return affine


def write_series(
    folder: Path,
    stored: np.ndarray,
    affine: np.ndarray,
    slope: float = 1.0,
    intercept: float = 0.0,
    series_number: int = 3,
    description: str = "t1_mprage_sag",
    skip_slices: tuple[int, ...] = (),
    pixel_data: bool = True,
    series_uid: str | None = None,
    gantry_tilt: float | None = None,
) -> list[Path]:
    """Write ``stored`` (X, Y, Z) int16 as one DICOM file per slice (k) into ``folder``.

    Column index = X, row index = Y, slice = Z; world values are ``stored * slope + intercept``.
    ``skip_slices`` leaves slices out (a series with a gap); ``pixel_data=False`` writes the
    headers only; ``gantry_tilt`` (degrees) writes a CT whose slices are sheared by that tilt
    (``affine``'s slice axis is not normal to the slices). The patient module holds
    :data:`PATIENT_NAME` and friends.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    lps = LPS @ affine[:3, :3]
    col_step, row_step = lps[:, 0], lps[:, 1]  # along a row (X), down a column (Y)
    dx, dy, dz = np.linalg.norm(lps, axis=0)
    normal = np.cross(col_step / dx, row_step / dy)
    study_uid, series_uid = generate_uid(), series_uid or generate_uid()
    frame_uid = generate_uid()
    paths = []
    for k in range(stored.shape[2]):
        if k in skip_slices:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Manufacturer, ds.PatientPosition = "MR", "GE MEDICAL SYSTEMS", "HFS"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = PATIENT_NAME, PATIENT_ID, PATIENT_BIRTH
        ds.PatientSex, ds.PatientAge = "F", "043Y"
        ds.ReferringPhysicianName = "Panza^Sancho"
        ds.InstitutionName = "La Mancha General"
        ds.ImageComments = f"for {PATIENT_NAME}, born {PATIENT_BIRTH}"
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = "20240102"
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = "101500"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyID, ds.AccessionNumber = "1", "ACC998877"
        ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = series_number, k + 1, 1
        ds.SeriesDescription = ds.ProtocolName = description
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        if gantry_tilt is not None:
            ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.SOPClassUID = meta.MediaStorageSOPClassUID = CTImageStorage
            ds.GantryDetectorTilt = gantry_tilt
        ds.MagneticFieldStrength, ds.RepetitionTime, ds.EchoTime = 3, 2300, 2.98
        ds.ImageOrientationPatient = [*(col_step / dx), *(row_step / dy)]
        position = LPS @ (affine @ [0, 0, k, 1])[:3]
        ds.ImagePositionPatient = [float(v) for v in position]
        ds.SliceLocation = float(position @ normal)
        ds.PixelSpacing = [float(dy), float(dx)]  # row spacing, column spacing
        ds.SliceThickness = ds.SpacingBetweenSlices = float(dz)
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        if pixel_data:
            ds.PixelData = np.ascontiguousarray(stored[:, :, k].T.astype("<i2")).tobytes()
        path = folder / f"IM{series_number:03d}_{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
