# segexp with the same torch / torchvision as `make test` (Makefile's TORCH; PyPI's CUDA build,
# which brings its own CUDA libraries: the host needs only the NVIDIA driver).
#   docker build -t segexp .
#   docker run --gpus all --shm-size=8g -v $PWD/outputs:/workspace/segexp/outputs segexp
#   docker run --gpus all --shm-size=8g -v $PWD/outputs:/workspace/segexp/outputs segexp \
#       torchrun --nproc_per_node=4 -m segexp model=smp_unet aug=strong
#   docker run --gpus all --shm-size=16g -v $PWD/outputs:/workspace/segexp/outputs \
#       -e OUT=/workspace/segexp/outputs/gpu-bench segexp bash benchmarks/gpu.sh   # the GPU benchmark
# outputs/ is a volume owned by the image's user (uid 1000): run with --user $(id -u) if yours
# differs and the mounted folder is not writable by uid 1000.
FROM python:3.12-slim

# Keep equal to TORCH in the Makefile (tests/test_package.py checks it).
ARG TORCH="torch==2.14.1 torchvision==0.29.1"
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 segexp
WORKDIR /workspace/segexp
# Dependencies first, so that editing the code does not invalidate this layer.
COPY pyproject.toml README.md ./
# (The packages pyproject.toml lists, as empty folders, conf/ for segexp.conf: what a build needs.)
RUN pip install $TORCH \
    && python -c "import pathlib, tomllib; [pathlib.Path(*p.split('.')).mkdir(parents=True, exist_ok=True) for p in tomllib.load(open('pyproject.toml', 'rb'))['tool']['setuptools']['packages']]" \
    && mv segexp/conf conf && touch segexp/__init__.py conf/__init__.py \
    && pip install ".[export,sweep,postgres,bench]" \
    && pip uninstall -y segexp && rm -rf segexp conf hydra_plugins build
COPY segexp ./segexp
COPY conf ./conf
COPY hydra_plugins ./hydra_plugins
COPY benchmarks ./benchmarks
# A regular install: the config tree ships inside the package (segexp.conf), so the segexp,
# segexp-evaluate, ... commands work from any folder.
RUN pip install --no-deps . && rm -rf build \
    && mkdir -p outputs && chown -R segexp:segexp /workspace/segexp
USER segexp

VOLUME ["/workspace/segexp/outputs"]
CMD ["segexp"]
