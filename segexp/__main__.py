import sys

from segexp.app import main
from segexp.distributed import hydra_overrides

if __name__ == "__main__":
    sys.argv += hydra_overrides()  # ranks > 0 under torchrun keep Hydra's files out of the run
    main()
