"""A hand-worked prediction shared by the boundary and split metric tests."""

import torch

IGNORE = 255


def hand_case() -> tuple[torch.Tensor, torch.Tensor]:
    """5 x 5, class 1 at (2, 2) in the truth; the prediction adds a false class-1 pixel at (0, 0).

    Truth boundaries: class 1 {(2,2)}; class 0 its four neighbours (1,2) (3,2) (2,1) (2,3).
    Prediction boundaries: class 1 {(2,2), (0,0)}; class 0 those four and (0,1), (1,0), which
    lie sqrt(2) from the nearest true class-0 boundary pixel and sqrt(8) from (2,2).
    """
    target = torch.zeros(5, 5, dtype=torch.long)
    target[2, 2] = 1
    prediction = target.clone()
    prediction[0, 0] = 1
    return prediction, target
