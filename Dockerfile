# CUDA PyTorch base image; segexp's other dependencies install from PyPI on top of it.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

WORKDIR /workspace/segexp
COPY pyproject.toml README.md ./
COPY segexp ./segexp
COPY conf ./conf
# torch/torchvision already come with the image; pip keeps them because they satisfy the ranges.
RUN pip install --no-cache-dir -e ".[dev]"

VOLUME ["/workspace/segexp/outputs"]
CMD ["python", "-m", "segexp"]
