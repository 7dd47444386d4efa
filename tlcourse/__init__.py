"""tlcourse: the tested helper package of the transfer-learning course.

Notebooks import it under one alias and call everything through it::

    import tlcourse as tl
    run = tl.start(seed=0)           # profile, device, seed, data notice
    train = tl.load_dataset("mnist", train=True)

Each submodule holds one concern and lists its public names in ``__all__``; they are
re-exported here so ``tl.<name>`` works for all of them.
"""

from .config import *  # noqa: F403
from .envvars import *  # noqa: F403
from .files import *  # noqa: F403
from .images import *  # noqa: F403
from .loaders import *  # noqa: F403
from .offline import *  # noqa: F403
from .provenance import *  # noqa: F403
from .data import *  # noqa: F403
from .splits import *  # noqa: F403
from .plots import *  # noqa: F403
from .session import *  # noqa: F403
from .models import *  # noqa: F403
from .names import *  # noqa: F403
from .transfer import *  # noqa: F403
from .freezing import *  # noqa: F403
from .interpolation import *  # noqa: F403
from .checkpoints import *  # noqa: F403
from .train import *  # noqa: F403
from .sources import *  # noqa: F403
from .arms import *  # noqa: F403
from .casestudy import *  # noqa: F403
from .results import *  # noqa: F403
from .casestudy_report import *  # noqa: F403
from .comparison import *  # noqa: F403
from .adapt import *  # noqa: F403
from .regularise import *  # noqa: F403
from .fusion import *  # noqa: F403
from .soups import *  # noqa: F403
from .selection import *  # noqa: F403
from .efficientnet import *  # noqa: F403
from .pretrained import *  # noqa: F403
from .imagenet_arm import *  # noqa: F403
from .hf_text import *  # noqa: F403
from .hf_standin import *  # noqa: F403
from .text_data import *  # noqa: F403
from .text_tokens import *  # noqa: F403
from .text_models import *  # noqa: F403
from .text_lm import *  # noqa: F403
from .text_budgets import *  # noqa: F403
from .run_grid import *  # noqa: F403
from .ratings_data import *  # noqa: F403
from .ratings_eval import *  # noqa: F403
from .recommender import *  # noqa: F403
from .cross_domain import *  # noqa: F403
from .side_info import *  # noqa: F403
from .distillation import *  # noqa: F403
from .inference_time import *  # noqa: F403
from .compression import *  # noqa: F403
from .quantisation import *  # noqa: F403
from .shifts import *  # noqa: F403
from .multitask import *  # noqa: F403
from .multitask_runs import *  # noqa: F403
from .surgical import *  # noqa: F403
from .exercises import *  # noqa: F403

__version__ = "0.1.0"
