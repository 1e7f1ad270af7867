"""The batched L-BFGS: every row of the batch is its own problem, with its own curvature and step length."""

import torch

from inversion.optimisation.lbfgs import BatchedLBFGS


def rosenbrock(points: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Row b: scales[b] x the Rosenbrock function of its two coordinates (minimum 0 at (1, 1))."""
    x, y = points[:, 0], points[:, 1]
    return scales * ((1 - x) ** 2 + 100 * (y - x**2) ** 2)


def minimise(scales: list[float], steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Minimise one scaled Rosenbrock function per row from (-1.2, 1): final points and each step's losses."""
    points = torch.nn.Parameter(torch.tensor([[-1.2, 1.0]] * len(scales), dtype=torch.float64))
    optimiser, history = BatchedLBFGS([points]), []
    for _ in range(steps):
        points.grad = None
        losses = rosenbrock(points, torch.tensor(scales, dtype=torch.float64))
        losses.sum().backward()
        optimiser.step(losses)
        history.append(losses.detach())
    optimiser.finish()
    return points.detach(), history


def test_each_row_reaches_its_minimum_whatever_the_scale_of_the_others():
    # the scales differ by 10^8: one step length for all (torch.optim.LBFGS on the sum) would leave the
    # small rows where they started
    points, _ = minimise([1e4, 1.0, 1e-4], steps=120)
    torch.testing.assert_close(points, torch.ones(3, 2, dtype=torch.float64), atol=1e-4, rtol=0)


def test_a_row_follows_the_same_path_alone_and_in_a_batch():
    alone, _ = minimise([1.0], steps=40)
    together, _ = minimise([1e4, 1.0], steps=40)
    torch.testing.assert_close(together[1], alone[0])


def test_a_row_ends_at_its_best_accepted_point_and_never_climbs():
    points, history = minimise([1.0, 30.0], steps=25)
    losses = torch.stack(history)
    final = rosenbrock(points, torch.tensor([1.0, 30.0], dtype=torch.float64))
    torch.testing.assert_close(final, losses.min(0).values)  # the best evaluated point (rejected trials are worse)
    assert (final < losses[0]).all()
