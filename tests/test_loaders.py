"""Loaders for WFLW, 300W-LP, AFLW2000-3D, 300VW and WIDER Face on fixtures in the exact formats."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from atpn_edge.data.crop import DEFAULT_CROP_SCALE, box_from_landmarks, crop_matrix
from atpn_edge.data.dataset import iter_samples
from atpn_edge.data.registry import open_dataset, parse_data_spec
from atpn_edge.data.vw300 import SPLITS_FILE, iter_video, load_splits, read_pts
from atpn_edge.data.w300lp import source_face_key
from atpn_edge.data.wider import box_iou, parse_bbx_gt
from atpn_edge.errors import UserError
from fixtures.real_formats import (
    dot_centre,
    dot_image,
    face_points,
    write_300vw_video,
    write_300wlp,
    write_aflw2000,
    write_300w,
    write_ljson,
    write_pts,
    write_wflw,
    write_wider,
)


def crop_pixel(sample_points: np.ndarray, size: int = 112) -> np.ndarray:
    return sample_points * size - 0.5


# ---- registry ---------------------------------------------------------------------------------
def test_parse_data_spec_kinds_and_errors(tmp_path):
    assert parse_data_spec("synthetic").kind == "synthetic"
    spec = parse_data_spec(f"300w-lp:{tmp_path}")
    assert spec.kind == "300w-lp" and spec.path == tmp_path
    with pytest.raises(UserError, match="unknown data kind 'imagenet'"):
        parse_data_spec(f"imagenet:{tmp_path}")
    with pytest.raises(UserError, match="missing path"):
        parse_data_spec("wflw")
    with pytest.raises(UserError, match="nowhere.*not found"):
        parse_data_spec(f"wflw:{tmp_path / 'nowhere'}")


# ---- WFLW --------------------------------------------------------------------------------------
def test_wflw_lines_subsets_and_landmark_pixels(tmp_path):
    written = write_wflw(tmp_path)
    test = open_dataset(f"wflw:{tmp_path}", split="test")
    assert len(test) == 6
    subsets = test.subsets()
    assert sorted(subsets) == sorted(["pose", "expression", "illumination", "makeup", "occlusion", "blur"])
    np.testing.assert_array_equal(subsets["expression"], [0, 1])  # line 0 has two flags
    np.testing.assert_array_equal(subsets["blur"], [5])
    for i in (0, 3):
        sample = test[i]
        landmarks, box, flags, rel = written["test"][i]
        assert sample.image.shape == (112, 112, 3) and sample.image.dtype == np.uint8
        assert sample.landmarks.shape == (98, 2) and sample.attributes == flags
        expected = crop_matrix(box, 112, DEFAULT_CROP_SCALE)
        want = landmarks @ expected[:, :2].T + expected[:, 2]
        np.testing.assert_allclose(crop_pixel(sample.landmarks), want, atol=1e-3)
        # The dot drawn at landmark 0 in the image is where landmark 0 is in the crop (RGB white).
        np.testing.assert_allclose(dot_centre(sample.image), want[0], atol=0.6)
        # face_box is the annotation box carried into the crop.
        np.testing.assert_allclose(crop_pixel(sample.face_box), [*(expected @ [*box[:2], 1]), *(expected @ [*box[2:], 1])], atol=1e-3)


def test_wflw_accepts_annotation_folder_splits_and_68(tmp_path):
    write_wflw(tmp_path, n_train=40, n_test=2)
    ann = tmp_path / "WFLW_annotations"
    train = open_dataset(f"wflw:{ann}", split="train")
    val = open_dataset(f"wflw:{ann / 'list_98pt_rect_attr_train_test'}", split="val")
    trainval = open_dataset(f"wflw:{tmp_path}", split="trainval")
    assert len(train) + len(val) == len(trainval) == 40
    assert {s.source for s in (train[i] for i in range(len(train)))}.isdisjoint(val[i].source for i in range(len(val)))
    sixty_eight = open_dataset(f"wflw:{tmp_path}", split="test", num_points=68)
    assert sixty_eight[0].landmarks.shape == (68, 2)
    with pytest.raises(UserError, match="list_98pt_rect_attr_train.txt"):
        open_dataset(f"wflw:{tmp_path / 'WFLW_images'}")


def test_wflw_bad_lines_name_file_and_line(tmp_path):
    write_wflw(tmp_path, n_train=3, n_test=1)
    path = tmp_path / "WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt"
    lines = path.read_text().splitlines()
    original = list(lines)
    lines[1] = " ".join(lines[1].split()[:150])  # truncated
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=rf"{path.name}:2: expected 207 fields.*got 150"):
        open_dataset(f"wflw:{tmp_path}", split="trainval")
    fields = original[2].split()
    fields[7] = "nan"
    path.write_text("\n".join([original[0], original[1], " ".join(fields)]) + "\n")
    with pytest.raises(UserError, match=rf"{path.name}:3: landmarks contain NaN"):
        open_dataset(f"wflw:{tmp_path}", split="trainval")


def test_wflw_missing_and_corrupt_images(tmp_path, caplog):
    written = write_wflw(tmp_path, n_train=2, n_test=3)
    (tmp_path / "WFLW_images" / written["test"][1][3]).unlink()
    with caplog.at_level("WARNING"):
        ds = open_dataset(f"wflw:{tmp_path}", split="test")
    assert len(ds) == 2 and ds.skip_counts()["image file not found"] == 1
    assert "skipped 1 item(s)" in caplog.text and written["test"][1][3] in caplog.text
    with pytest.raises(UserError, match="test_1.jpg: image file not found"):
        open_dataset(f"wflw:{tmp_path}", split="test", strict=True)
    corrupt = tmp_path / "WFLW_images" / written["test"][2][3]
    corrupt.write_bytes(b"not a jpeg at all")
    with pytest.raises(UserError, match="test_2.jpg: cannot decode image"):
        ds[1]
    assert len(list(iter_samples(ds))) == 1  # the corrupt one counted, not raised
    with pytest.raises(UserError):
        list(iter_samples(ds, strict=True))


# ---- 300W-LP -----------------------------------------------------------------------------------
def test_300wlp_pose_order_box_and_flip_folders(tmp_path):
    written = write_300wlp(tmp_path)
    ds = open_dataset(f"300w-lp:{tmp_path}", split="trainval")
    assert len(ds) == 24  # 8 folders x 3, the landmarks/ folder ignored
    assert all("landmarks/" not in item[0] for item in ds._items)
    for i in (0, 13):
        sample = ds[i]
        rel = "/".join(sample.source.split("/")[-2:])
        landmarks, (yaw, pitch, roll) = written[rel]
        np.testing.assert_allclose(sample.pose, [yaw, pitch, roll], atol=1e-4)
        assert sample.landmarks.shape == (68, 2)
        matrix = crop_matrix(box_from_landmarks(landmarks), 112, DEFAULT_CROP_SCALE)
        np.testing.assert_allclose(crop_pixel(sample.landmarks), landmarks @ matrix[:, :2].T + matrix[:, 2], atol=1e-3)
        np.testing.assert_allclose(dot_centre(sample.image), crop_pixel(sample.landmarks[0]), atol=0.6)


def test_300wlp_split_groups_views_and_flips(tmp_path):
    assert source_face_key("HELEN_232194_1_7.jpg") == "HELEN_232194_1"
    assert source_face_key("LFPW_image_test_0001_0.jpg") == "LFPW_image_test_0001"
    for k in range(120):  # enough names that both sides of a 5 % split are populated
        for folder in ("HELEN", "HELEN_Flip"):
            for view in (0, 1):
                d = tmp_path / folder
                d.mkdir(exist_ok=True)
                (d / f"HELEN_{k}_1_{view}.jpg").write_bytes(b"")
                (d / f"HELEN_{k}_1_{view}.mat").write_bytes(b"")
    train = open_dataset(f"300w-lp:{tmp_path}", split="train")
    val = open_dataset(f"300w-lp:{tmp_path}", split="val")
    assert len(train) + len(val) == 480 and 0 < len(val) < 60
    train_keys = {source_face_key(p.split("/")[-1]) for p, _ in train._items}
    val_keys = {source_face_key(p.split("/")[-1]) for p, _ in val._items}
    assert train_keys.isdisjoint(val_keys)
    assert len(val) == 4 * len(val_keys)  # both views and both flips of each val face
    with pytest.raises(UserError, match="no test split"):
        open_dataset(f"300w-lp:{tmp_path}", split="test")


def test_300wlp_bad_mat(tmp_path):
    write_300wlp(tmp_path, names_per_folder=1)
    mat = tmp_path / "AFW" / "AFW_1000_1_0.mat"
    scipy.io.savemat(str(mat), {"pt2d": np.zeros((2, 67)), "Pose_Para": np.zeros((1, 7))})
    ds = open_dataset(f"300w-lp:{tmp_path}", split="trainval")
    with pytest.raises(UserError, match=r"AFW_1000_1_0.mat: 'pt2d': expected 68 landmarks.*got shape \(67, 2\)"):
        ds[0]
    mat.write_bytes(b"garbage")
    with pytest.raises(UserError, match="AFW_1000_1_0.mat: cannot read .mat file"):
        ds[0]


# ---- AFLW2000-3D ------------------------------------------------------------------------------
def test_aflw2000_99_degree_protocol(tmp_path, caplog):
    poses = [(10, -5, 3), (-98.9, 20, 0), (100, 0, 0), (0, -120, 0), (5, 5, -99.5), (30, 40, 50)]
    written = write_aflw2000(tmp_path, poses)
    with caplog.at_level("INFO"):
        ds = open_dataset(f"aflw2000:{tmp_path}", split="test")
    assert len(ds) == 3 and ds.excluded_out_of_range == 3
    assert "excluded 3 of 6 images" in caplog.text
    np.testing.assert_allclose([ds[i].pose for i in range(3)], [poses[0], poses[1], poses[5]], atol=1e-4)
    landmarks = written[5][0]
    matrix = crop_matrix(box_from_landmarks(landmarks), 112, DEFAULT_CROP_SCALE)
    np.testing.assert_allclose(crop_pixel(ds[2].landmarks), landmarks @ matrix[:, :2].T + matrix[:, 2], atol=1e-3)
    assert ds[2].source.endswith("image00007.jpg")
    with pytest.raises(UserError, match="AFLW2000-3D is a test set"):
        open_dataset(f"aflw2000:{tmp_path}", split="train")


def test_aflw2000_nan_pose(tmp_path):
    write_aflw2000(tmp_path, [(0, 0, 0)])
    mat = tmp_path / "image00002.mat"
    data = scipy.io.loadmat(str(mat))
    data["Pose_Para"][0, 1] = np.nan
    scipy.io.savemat(str(mat), {k: v for k, v in data.items() if not k.startswith("__")})
    with pytest.raises(UserError, match="image00002.mat: Pose_Para contains NaN"):
        open_dataset(f"aflw2000:{tmp_path}", split="test")


# ---- 300VW ---------------------------------------------------------------------------------------
def test_300vw_split_lists():
    splits = load_splits()
    assert {k: len(v) for k, v in splits.items()} == {"train": 50, "category1": 31, "category2": 19, "category3": 14}
    every = [v for ids in splits.values() for v in ids]
    assert len(set(every)) == 114
    assert {"114", "548"} <= set(splits["category1"]) and "562" in splits["category3"] and "001" in splits["train"]
    assert json.loads(SPLITS_FILE.read_text())["category2"][0] == "203"


def test_read_pts_one_based_and_errors(tmp_path):
    path = tmp_path / "000001.pts"
    points = np.arange(136, dtype=float).reshape(68, 2) + 1
    write_pts(path, points)
    np.testing.assert_allclose(read_pts(path), points - 1)
    write_pts(path, points[:67])
    with pytest.raises(UserError, match=r"000001.pts: n_points is 67, expected 68"):
        read_pts(path)
    text = path.read_text().replace("n_points:  67", "n_points: 68")
    path.write_text(text)
    with pytest.raises(UserError, match=r"expected 68 landmarks"):
        read_pts(path)
    write_pts(path, points)
    path.write_text(path.read_text().rsplit("}", 1)[0])
    with pytest.raises(UserError, match="truncated"):
        read_pts(path)
    write_pts(path, points)
    lines = path.read_text().splitlines()
    lines[5] = "12.0"
    path.write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"000001.pts:6: expected 'x y'"):
        read_pts(path)


def test_300vw_frames_samples_and_video_iterator(tmp_path):
    frames = write_300vw_video(tmp_path, "114", num_frames=6)  # category 1
    write_300vw_video(tmp_path, "562", num_frames=3, seed=1)  # category 3
    ds = open_dataset(f"300vw:{tmp_path}", split="test")
    assert len(ds) == 9
    np.testing.assert_array_equal(ds.subsets()["category1"], np.arange(6))
    np.testing.assert_array_equal(ds.subsets()["category3"], [6, 7, 8])
    assert "category2" not in ds.subsets()
    for i in (4, 1, 5):  # out of order: the reader reopens the video
        sample = ds[i]
        matrix = crop_matrix(box_from_landmarks(frames[i]), 112, DEFAULT_CROP_SCALE)
        want = frames[i] @ matrix[:, :2].T + matrix[:, 2]
        np.testing.assert_allclose(crop_pixel(sample.landmarks), want, atol=5e-3)  # .pts has 3 decimals
        np.testing.assert_allclose(dot_centre(sample.image), want[0], atol=0.8)  # right frame decoded
    previous = open_dataset(f"300vw:{tmp_path}", split="test", box_source="previous")
    sample = previous[3]  # cropped around frame 3's box: the face sits 4 px (scaled) to the right
    matrix = crop_matrix(box_from_landmarks(frames[2]), 112, DEFAULT_CROP_SCALE)
    np.testing.assert_allclose(crop_pixel(sample.landmarks), frames[3] @ matrix[:, :2].T + matrix[:, 2], atol=5e-3)
    seen = list(iter_video(tmp_path / "114"))
    assert len(seen) == 6
    for (image, landmarks), truth in zip(seen, frames):
        assert image.shape == (160, 200, 3)
        np.testing.assert_allclose(landmarks, truth, atol=1e-3)
        np.testing.assert_allclose(dot_centre(image), truth[0], atol=0.8)


def test_300vw_missing_videos_and_short_video(tmp_path, caplog):
    write_300vw_video(tmp_path, "114", num_frames=3)
    with caplog.at_level("WARNING"):
        ds = open_dataset(f"300vw:{tmp_path}", split="test")
    assert ds.skip_counts()["video folder, vid.avi or annotations not found"] == 63
    assert "skipped 63 item(s)" in caplog.text
    with pytest.raises(UserError, match=r"none of the 47 300VW train videos found.*e\.g\. 001"):
        open_dataset(f"300vw:{tmp_path}", split="train")
    write_pts(tmp_path / "114" / "annot" / "000005.pts", np.ones((68, 2)))  # past the video's end
    with pytest.raises(UserError, match=r"vid.avi: video ends at frame 3, before frame 4"):
        list(iter_video(tmp_path / "114"))


# ---- WIDER Face ----------------------------------------------------------------------------------
WIDER_ENTRIES = [
    ("0--Parade/a.jpg", [(20, 30, 60, 70, 0, 0, 0, 0, 0, 0), (150, 40, 50, 50, 1, 0, 0, 1, 0, 0)]),
    ("0--Parade/empty.jpg", []),
    ("1--Handshaking/b.jpg", [(100, 60, 80, 90, 0, 0, 0, 0, 0, 0), (10, 10, 8, 12, 2, 0, 0, 0, 0, 0)]),
]


def test_wider_parse_count_zero_and_truncation(tmp_path):
    write_wider(tmp_path, "train", WIDER_ENTRIES)
    path = tmp_path / "wider_face_split" / "wider_face_train_bbx_gt.txt"
    entries = parse_bbx_gt(path)
    assert [e[0] for e in entries] == [e[0] for e in WIDER_ENTRIES]
    assert [len(e[1]) for e in entries] == [2, 0, 2]
    np.testing.assert_array_equal(entries[2][1][0, :4], [100, 60, 80, 90])
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # drop the last face line
    with pytest.raises(UserError, match=rf"{path.name}:11: truncated.*declares 2 faces"):
        parse_bbx_gt(path)
    lines[3] = "20 30 60"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=rf"{path.name}:4: expected 10 values"):
        parse_bbx_gt(path)


def test_wider_faces_and_non_faces(tmp_path):
    write_wider(tmp_path, "train", WIDER_ENTRIES)
    ds = open_dataset(f"wider:{tmp_path}", split="train", seed=3)
    counts = ds.skip_counts()
    assert counts["face marked invalid"] == 1 and counts["face shorter side under 20 px"] == 1
    assert len(ds) == 4  # 2 faces + 2 non-faces, alternating
    np.testing.assert_array_equal(ds.subsets()["face"], [0, 2])
    np.testing.assert_array_equal(ds.subsets()["non_face"], [1, 3])
    face = ds[0]
    assert face.face_score == 1.0 and face.landmarks is None and face.pose is None
    # The face is a white rectangle: face_box should bound the white pixels of the crop.
    # WIDER's x1 is the first face pixel's index, so the white area spans [x1 - 0.5, x1 + w - 0.5]
    # while the box is [x1, x1 + w]: centres agree to half an image pixel (0.64 crop px here).
    box_px = crop_pixel(face.face_box)
    white = dot_centre(face.image)
    np.testing.assert_allclose(white, (box_px[:2] + box_px[2:]) / 2, atol=0.8)
    mass = (face.image.astype(float).mean(axis=2) - 30).clip(0).sum() / 225
    np.testing.assert_allclose(mass, (box_px[2] - box_px[0]) * (box_px[3] - box_px[1]), rtol=0.03)
    for i in (1, 3):
        raw = ds.raw(i)
        assert raw.face_score == 0.0
        faces = ds._image_faces[ds._images.index(raw.source.split("#")[0])]
        assert np.all(box_iou(raw.box, faces) < 0.3)
        np.testing.assert_array_equal(raw.box, ds.raw(i).box)  # deterministic
        sample = ds[i]
        assert sample.face_score == 0.0 and sample.face_box is None
    other = open_dataset(f"wider:{tmp_path}", split="train", seed=4)
    assert not np.array_equal(other.raw(1).box, ds.raw(1).box)


def test_augmented_real_samples_are_reproducible_per_epoch(tmp_path):
    write_wflw(tmp_path, n_train=2, n_test=4)
    ds = open_dataset(f"wflw:{tmp_path}", split="test", augment=True, seed=7)
    first, again = ds[1], ds[1]
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.landmarks, again.landmarks)
    ds.set_epoch(1)
    assert not np.allclose(ds[1].landmarks, first.landmarks)
    plain = open_dataset(f"wflw:{tmp_path}", split="test")
    assert not np.allclose(plain[1].landmarks, first.landmarks)


def test_synthetic_kind_uses_split_seeds():
    from atpn_edge.data.synthetic import SyntheticConfig, SyntheticFaces

    val = open_dataset("synthetic", split="val", size=112, num_points=68, limit=2)
    assert len(val) == 2
    direct = SyntheticFaces(2, 1, config=SyntheticConfig(size=112, num_points=68))[1]
    np.testing.assert_array_equal(val[1].image, direct.image)
    augmented = open_dataset("synthetic", split="val", num_points=68, limit=2, augment=True, seed=0)
    sample = augmented[1]
    assert sample.image.shape == (112, 112, 3) and not np.array_equal(sample.image, direct.image)


# ---- 300-W -------------------------------------------------------------------------------------
def test_300w_protocol_subsets_and_one_based_points(tmp_path):
    written = write_300w(tmp_path)
    test = open_dataset(f"300w:{tmp_path}", split="test", num_points=68)
    subsets = test.subsets()
    # common = LFPW test + HELEN test, challenging = iBUG, full = both, private = 300-W indoor + outdoor
    assert {k: len(v) for k, v in subsets.items()} == {"common": 4, "challenging": 2, "full": 6, "private": 4}
    assert len(test) == 10
    sources = [test.raw(i).source for i in range(len(test))]
    assert not any("trainset" in s or "/afw/" in s for s in sources)
    for i in (0, 5):
        raw = test.raw(i)
        rel = str(Path(raw.source).relative_to(tmp_path))
        np.testing.assert_allclose(raw.landmarks, written[rel], atol=1e-5)  # .pts are 1-based
        # the first point's dot lies where the 0-based landmark says
        np.testing.assert_allclose(dot_centre(raw.image), written[rel][0], atol=0.3)
        sample = test[i]
        assert sample.landmarks.shape == (68, 2) and sample.face_score == 1.0
    train, val = (open_dataset(f"300w:{tmp_path}", split=s, num_points=68) for s in ("train", "val"))
    trainval = open_dataset(f"300w:{tmp_path}", split="trainval", num_points=68)
    assert len(train) + len(val) == len(trainval) == 6  # LFPW train + HELEN train + AFW
    assert not train.subsets()


def test_300w_plain_folder_is_all_test_and_reads_ljson(tmp_path):
    written = write_300w(tmp_path, per_folder=2, folders=("photos",), suffix=".jpg")
    ljson_points = face_points(68, (40, 40, 120, 120), np.random.default_rng(5))
    cv2.imwrite(str(tmp_path / "photos" / "lenna.png"), dot_image(ljson_points[:1]))
    write_ljson(tmp_path / "photos" / "lenna.ljson", ljson_points)
    cv2.imwrite(str(tmp_path / "photos" / "thumbnail.jpg"), dot_image(ljson_points[:1]))  # no annotation: skipped
    test = open_dataset(f"300w:{tmp_path}", split="test", num_points=98)
    assert len(test) == 3 and list(test.subsets()) == ["all"]
    lenna = next(test.raw(i) for i in range(3) if test.raw(i).source.endswith("lenna.png"))
    np.testing.assert_allclose(lenna.landmarks, ljson_points, atol=1e-5)  # (y, x) in the file
    assert test.skip_counts() == {"image without a .pts or .ljson annotation": 1}
    assert len(written) == 2


def test_300w_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="no images"):
        open_dataset(f"300w:{tmp_path}", split="test")
    write_300w(tmp_path, per_folder=1, folders=("ibug",))
    pts = next((tmp_path / "ibug").glob("*.pts"))
    pts.write_text(pts.read_text().replace("}", ""))
    with pytest.raises(UserError, match=f"{pts.name}: truncated"):
        open_dataset(f"300w:{tmp_path}", split="test")
    write_ljson(pts.with_suffix(".ljson"), np.zeros((19, 2)))
    pts.unlink()
    with pytest.raises(UserError, match="no landmark group with 68 points"):
        open_dataset(f"300w:{tmp_path}", split="test")


def test_builtin_real_faces_are_evaluation_only(monkeypatch, tmp_path):
    import sys

    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(UserError, match="make setup"):
        parse_data_spec("real")
    write_300w(tmp_path / "share" / "atpn-edge" / "real_faces", per_folder=1, folders=("menpo",))
    spec = parse_data_spec("real")
    assert spec.kind == "300w" and len(open_dataset(spec, split="test")) == 1
    assert len(open_dataset(spec, split="trainval")) == 0


def test_training_on_the_real_photographs_is_refused():
    from atpn_edge.train.config import TrainConfig
    from atpn_edge.train.data import load_training_data

    with pytest.raises(UserError, match="evaluation only"):
        load_training_data(TrainConfig(data="real"), 68, 112, ctx=None)
