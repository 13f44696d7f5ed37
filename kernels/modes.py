"""Integer codes shared by the API layer and the CPU/CUDA kernels.

Each code names one rounding recipe of ``shared NUMERICS.md`` (see
``docs/numerics.md``).  The API layer picks the code from the numerics profile,
dtype and scheme; kernels branch on it once per chunk, never per element.
"""

# quantize: float32 -> integer
Q_FMA = 0  # torch per-tensor 8-bit: fl(x*inv + zp) in one rounding; NaN -> qmax
Q_TWO = 1  # torch per-channel and qint32: fl(fl(x*inv) + fl(zp)); NaN -> nan_q
Q_FLOATQP = 2  # torch float zero points: lrint to int64, truncated to int32
Q_SUBBYTE = 3  # torch per-tensor sub-byte: rint(fl(x*inv)) + zp, lrint to int64
Q_ONNX = 4  # onnxruntime: rne(fl(x/s)) + zp, saturating; NaN -> qmin
Q_TFLITE = 5  # tflite: round_half_away(fl(x/s)) + zp; NaN -> qmin
Q_REF = 6  # reference: rne(x/s exactly) + zp; NaN -> zp

# dequantize: integer -> float32
DQ_TORCH_TENSOR = 0  # fl(fl(int32(q - zp)) * s)
DQ_TORCH_CHANNEL = 1  # fl(double(fl(fl(q) - fl(zp))) * s64)
DQ_ONNX = 2  # fl(fl(q - zp) * s)
DQ_TFLITE = 3  # fl(double(s) * (q - zp))
DQ_REF = 4  # exact (q - zp) * s, rounded once to float32

# fake quantize (torch's forward and straight-through mask)
FQ_TENSOR = 0  # per-tensor: float32 clamp, fmax(NaN, qmin) == qmin
FQ_CHANNEL = 1  # per-channel, integer zero points: int64 cast before clamping
FQ_CHANNEL_FLOAT_ZP = 2  # per-channel, float zero points: lrint(fl(zp + fl(x*inv)))

# requantize: integer -> integer (per-tensor output)
RQ_TWO_STEP = 0  # dequantize with DQ_*, then quantize with Q_* (torch, onnxruntime)
RQ_TFLITE = 1  # fixed-point multiplier, double rounding
RQ_TFLITE_SINGLE = 2  # fixed-point multiplier, single rounding
RQ_REF = 3  # exact rational rounding

# linear / convolution: requantization epilogue of the int32 accumulator
# (kernels/cpu/requant.py documents each one's parameter rows)
EP_FBGEMM = 0  # fl(fl(fma(p, q, fl(A)) * M)), cvt (overflow/NaN -> low clamp)
EP_QNNPACK = 1  # int32 bias, fl(fl(A + bq) * rs), cvt (overflow/NaN -> low clamp)
EP_ONEDNN = 2  # fl(fl(fl(A)*s_src)*s_w) + b, fl(fl(t*inv_dst) + zo), rne, saturate
EP_ONNXRUNTIME = 3  # int32 bias, rne(fl(fl(A + b) * M)) + zo, saturate
EP_TFLITE = 4  # int32 bias, gemmlowp fixed-point multiplier, double rounding
EP_TFLITE_SINGLE = 5  # int32 bias, fixed-point multiplier, single rounding
EP_REFERENCE = 6  # exact rne((A*sx*sw + b) / so) + zo
