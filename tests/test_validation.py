"""Bad input gets a clear error that says how to fix it; numerics selection."""

import threading

import numpy as np
import pytest

import qops

X = np.float32([0.5, -1.25, 3.0])


@pytest.mark.parametrize(
    "scale", [0.0, -1.0, float("nan"), float("inf"), 1e-45, 1e-39, 1e39, 2.0**-127]
)
def test_bad_scale(scale):
    with pytest.raises(ValueError, match="scale"):
        qops.quantize_per_tensor(X, scale, 0, qops.quint8)
    with pytest.raises(ValueError, match="scales"):
        qops.quantize_per_channel(X, [1.0, scale, 1.0], [0, 0, 0], 0, qops.quint8)
    with pytest.raises(ValueError, match="scale"):
        qops.fake_quantize_per_tensor_affine(X, scale, 0, 0, 255)


def test_smallest_normal_scale_is_accepted():
    q = qops.quantize_per_tensor(X, 2.0**-126, 0, qops.qint8)
    np.testing.assert_array_equal(q.int_repr(), [127, -128, 127])


@pytest.mark.parametrize("scale", ["0.1", None, [0.1], True])
def test_scale_type(scale):
    with pytest.raises(TypeError, match="scale must be a real number"):
        qops.quantize_per_tensor(X, scale, 0, qops.quint8)


@pytest.mark.parametrize(
    "dtype,zp", [(qops.quint8, -1), (qops.quint8, 256), (qops.qint8, 128), (qops.qint8, -129),
                 (qops.quint4x2, 16), (qops.quint2x4, 4)]
)
def test_zero_point_range(dtype, zp):
    with pytest.raises(ValueError, match="outside the range"):
        qops.quantize_per_tensor(X, 1.0, zp, dtype)


def test_zero_point_type():
    with pytest.raises(TypeError, match=r"pass int\(3.0\)"):
        qops.quantize_per_tensor(X, 1.0, 3.0, qops.quint8)
    with pytest.raises(TypeError, match="integer"):
        qops.quantize_per_tensor(X, 1.0, 2.5, qops.quint8)
    with pytest.raises(TypeError, match="integer"):
        qops.quantize_per_tensor(X, 1.0, True, qops.quint8)
    with pytest.raises(ValueError, match="outside the range"):
        qops.quantize_per_channel(X, [1.0] * 3, [0, 300, 0], 0, qops.quint8)
    with pytest.raises(TypeError, match="integers"):
        qops.quantize_per_channel(X, [1.0] * 3, ["a", "b", "c"], 0, qops.quint8)


def test_axis_and_lengths():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        qops.quantize_per_channel(x, [1.0] * 3, [0] * 3, 2, qops.quint8)
    with pytest.raises(ValueError, match="scales has 2 entries but axis 1"):
        qops.quantize_per_channel(x, [1.0] * 2, [0] * 3, 1, qops.quint8)
    with pytest.raises(ValueError, match="zero_points has 2 entries"):
        qops.quantize_per_channel(x, [1.0] * 3, [0] * 2, 1, qops.quint8)
    with pytest.raises(ValueError, match="1-D"):
        qops.quantize_per_channel(x, [[1.0] * 3], [0] * 3, 1, qops.quint8)
    with pytest.raises(ValueError, match="at least a 1-D"):
        qops.quantize_per_channel(np.float32(1), [1.0], [0], 0, qops.quint8)
    # negative axes count from the end (torch refuses them)
    a = qops.quantize_per_channel(x, [1.0] * 3, [0] * 3, -1, qops.quint8)
    assert a.q_per_channel_axis() == 1


@pytest.mark.parametrize("ints", [np.arange(3), np.arange(3, dtype=np.uint8), np.array([True])])
def test_integer_input_is_refused(ints):
    with pytest.raises(TypeError, match="int_repr"):
        qops.quantize_per_tensor(ints, 1.0, 0, qops.quint8)


@pytest.mark.parametrize("bad", [np.array(["a"]), np.array([1 + 2j]), object(), "text"])
def test_non_numeric_input(bad):
    with pytest.raises(TypeError):
        qops.quantize_per_tensor(bad, 1.0, 0, qops.quint8)


@pytest.mark.parametrize("dt", [np.float64, np.float16])
def test_other_floats_are_converted_to_float32(rng, dt):
    x = (rng.standard_normal(1000) * 3).astype(dt)
    a = qops.quantize_per_tensor(x, 0.03, 5, qops.quint8)
    b = qops.quantize_per_tensor(x.astype(np.float32), 0.03, 5, qops.quint8)
    assert a == b


def test_lists_are_accepted():
    a = qops.quantize_per_tensor([0.5, 1.5], 1.0, 0, qops.qint8)
    np.testing.assert_array_equal(a.int_repr(), np.int8([0, 2]))


def test_unknown_dtype():
    with pytest.raises(TypeError, match="qops.quint8"):
        qops.quantize_per_tensor(X, 1.0, 0, "int8")
    assert qops.dtypes.as_qdtype("torch.qint8") is qops.qint8


def test_unknown_numerics():
    with pytest.raises(ValueError, match="known profiles: fbgemm, qnnpack"):
        qops.quantize_per_tensor(X, 1.0, 0, qops.quint8, numerics="fbgem")
    with pytest.raises(ValueError, match="unknown numerics"):
        with qops.numerics("tpu"):
            pass
    with pytest.raises(TypeError, match="profile name"):
        qops.dequantize(qops.quantize_per_tensor(X, 1.0, 0, qops.quint8), numerics=3)


def test_quant_range():
    with pytest.raises(ValueError, match="quant_min .* <= quant_max"):
        qops.fake_quantize_per_tensor_affine(X, 1.0, 0, 10, 5)
    with pytest.raises(ValueError, match=r"\[quant_min, quant_max\]"):
        qops.fake_quantize_per_tensor_affine(X, 1.0, 20, 0, 15)
    with pytest.raises(ValueError, match="zero_points must lie"):
        qops.fake_quantize_per_channel_affine(X, [1.0] * 3, [0, 20, 0], 0, 0, 15)
    with pytest.raises(ValueError, match="finite"):
        qops.fake_quantize_per_channel_affine(X, [1.0] * 3, [0.5, np.nan, 0.5], 0, 0, 15)


def test_dequantize_and_requantize_need_qtensors():
    with pytest.raises(TypeError, match="expects a QTensor"):
        qops.dequantize(X)
    with pytest.raises(TypeError, match="expects a QTensor"):
        qops.requantize(X, 1.0, 0)
    q = qops.quantize_per_tensor(X, 1.0, 0, qops.qint8)
    with pytest.raises(ValueError, match="outside the range"):
        qops.requantize(q, 1.0, -1, qops.quint8)
    with pytest.raises(ValueError, match="scale"):
        qops.requantize(q, 0.0, 0)


def test_float_qparams_outside_torch_profiles():
    with pytest.raises(NotImplementedError, match="float zero points"):
        qops.quantize_per_channel(X, [1.0] * 3, [0.5] * 3, 0, qops.quint8, numerics="onnxruntime")
    q = qops.quantize_per_channel(X, [1.0] * 3, [0.5] * 3, 0, qops.quint8)
    for profile in ("tflite", "reference", "onnxruntime"):
        with pytest.raises(NotImplementedError):
            qops.requantize(q, 1.0, 0, numerics=profile)
    with pytest.raises(NotImplementedError, match="not qint32"):
        qops.quantize_per_channel(X, [1.0] * 3, [0.5] * 3, 0, qops.qint32)


def test_dynamic_validation():
    with pytest.raises(ValueError, match="non-empty"):
        qops.quantize_per_tensor_dynamic(np.zeros(0, np.float32), qops.quint8)
    with pytest.raises(ValueError, match="NaN or infinity"):
        qops.quantize_per_tensor_dynamic(np.float32([1, np.nan]), qops.quint8)
    with pytest.raises(NotImplementedError, match="quint8 and qint8"):
        qops.quantize_per_tensor_dynamic(X, qops.qint32)
    with pytest.raises(TypeError, match="reduce_range"):
        qops.quantize_per_tensor_dynamic(X, qops.quint8, reduce_range="yes")


def test_numerics_context():
    x = np.float32([2.5])
    assert int(qops.quantize_per_tensor(x, 1.0, 3, qops.quint8).int_repr()[0]) == 6
    with qops.numerics("onnxruntime"):
        assert int(qops.quantize_per_tensor(x, 1.0, 3, qops.quint8).int_repr()[0]) == 5
        # an explicit argument wins
        assert int(qops.quantize_per_tensor(x, 1.0, 3, qops.quint8, numerics="tflite").int_repr()[0]) == 6
        with qops.numerics("fbgemm"):
            assert int(qops.quantize_per_tensor(x, 1.0, 3, qops.quint8).int_repr()[0]) == 6
        assert int(qops.quantize_per_tensor(x, 1.0, 3, qops.quint8).int_repr()[0]) == 5
    assert int(qops.quantize_per_tensor(x, 1.0, 3, qops.quint8).int_repr()[0]) == 6
    assert qops.available_numerics()[0] == "fbgemm"
    assert set(qops.available_numerics()) == {
        "fbgemm", "qnnpack", "onednn", "onnxruntime", "tflite", "tflite_single", "reference"
    }


def test_numerics_context_is_thread_local():
    seen = []
    with qops.numerics("reference"):
        t = threading.Thread(
            target=lambda: seen.append(int(qops.quantize_per_tensor(np.float32([2.5]), 1.0, 3, qops.quint8).int_repr()[0]))
        )
        t.start()
        t.join()
    assert seen == [6]  # the other thread still uses the default (fbgemm)


def test_cuda_without_gpu_names_the_op(monkeypatch):
    from numba import cuda

    if cuda.is_available():
        pytest.skip("a CUDA device (or the simulator) is available")
    q = qops.quantize_per_tensor(X, 1.0, 0, qops.quint8)
    with pytest.raises(RuntimeError, match=r"to\('cuda'\)"):
        q.to("cuda")
    from qops import _dispatch

    with pytest.raises(RuntimeError, match="quantize on 'cuda'"):
        _dispatch.run("quantize", "cuda")


def test_tflite_requantize_ratio_limit():
    q = qops.quantize_per_tensor(X, 1.0, 0, qops.qint8)
    with pytest.raises(ValueError, match="tflite_single"):
        qops.requantize(q, 2.0**-32, 0, numerics="tflite")
    assert q.int_repr().tolist() == [0, -1, 3]
    ok = qops.requantize(q, 0.25, 0, numerics="tflite")  # ratio 4: shift 3
    assert ok.int_repr().tolist() == [0, -4, 12]
    # below 2**31 it runs; TFLite's int32 left shift may then wrap, as on x86
    assert qops.requantize(q, 2.0**-30, 0, numerics="tflite").shape == (3,)
    # single rounding saturates the multiplier instead of refusing
    assert qops.requantize(q, 2.0**-32, 0, numerics="tflite_single").shape == (3,)
