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
RUN mkdir segexp && touch segexp/__init__.py \
    && pip install -e ".[export]" \
    && rm -rf segexp
COPY segexp ./segexp
COPY conf ./conf
# Editable install: conf/ is read from beside the package (segexp/app.py, CONFIG_DIR).
# torch/torchvision come with the base image; pip keeps them because they satisfy the ranges.
RUN pip install --no-deps -e .

VOLUME ["/workspace/segexp/outputs"]
CMD ["python", "-m", "segexp"]
