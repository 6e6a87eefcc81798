# segexp on a CUDA PyTorch base image:
#   docker build -t segexp .
#   docker run --gpus all --shm-size=8g -v $PWD/outputs:/workspace/segexp/outputs segexp
#   docker run --gpus all --shm-size=8g -v $PWD/outputs:/workspace/segexp/outputs segexp \
#       torchrun --nproc_per_node=4 -m segexp model=smp_unet aug=strong
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /workspace/segexp
# Dependencies first, so that editing the code does not invalidate this layer.
COPY pyproject.toml README.md ./
RUN mkdir -p segexp conf && touch segexp/__init__.py conf/__init__.py \
    && pip install ".[export]" \
    && pip uninstall -y segexp && rm -rf segexp conf build
COPY segexp ./segexp
COPY conf ./conf
# A regular install: the config tree ships inside the package (segexp.conf), so the segexp,
# segexp-evaluate, ... commands work from any folder. torch/torchvision come with the base
# image; pip keeps them because they satisfy the ranges.
RUN pip install --no-deps . && rm -rf build

VOLUME ["/workspace/segexp/outputs"]
CMD ["segexp"]
