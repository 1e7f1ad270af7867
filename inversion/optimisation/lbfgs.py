"""L-BFGS for a batch of independent problems: one evaluation of the batch is one step of every problem.

The images of a request are independent problems (each image its own source and target).
torch.optim.LBFGS would see one problem: one step length and one curvature history for all, so
the hardest image (the prediction stage's) sets the pace of the others. Here every image keeps
its own curvature pairs, step length and backtracking line search (sufficient decrease, Armijo);
after each evaluation an image either accepts its trial point and takes a new quasi-Newton
direction, or shortens its step. Every evaluation thus serves every image, and a step budget is
exactly that many evaluations of the batch.

    optimiser = BatchedLBFGS(parameters)          # each parameter: B x ..., row b belongs to image b
    for _ in range(steps):
        losses = objective()                       # B losses
        losses.sum().backward()                    # image b's gradient lands in row b only
        optimiser.step(losses)
    optimiser.finish()                             # every image at its best accepted point
"""

from __future__ import annotations

import torch

SUFFICIENT_DECREASE = 1e-4  # Armijo's c1: the usual choice (Nocedal and Wright)
SHRINK = 0.5  # a rejected trial's step length is multiplied by this
MIN_CURVATURE = 1e-10  # a pair with s.y below this would make the inverse Hessian estimate indefinite


class BatchedLBFGS:
    """Independent L-BFGS with a backtracking line search for each row of the batch."""

    def __init__(self, parameters: list[torch.nn.Parameter], history_size: int = 20, learning_rate: float = 1.0):
        self.parameters = list(parameters)
        self.batch = self.parameters[0].shape[0]
        self.history_size, self.learning_rate = history_size, learning_rate
        self.history: list[list[tuple[torch.Tensor, torch.Tensor, float]]] = [[] for _ in range(self.batch)]
        self.point = self.loss = self.gradient = self.direction = self.step_length = None

    def step(self, losses: torch.Tensor) -> None:
        """Read each image's loss (`losses`, B) and gradient (the parameters' .grad) at the current trial
        point, accept or reject it, and move the parameters to the next trial points."""
        point, gradient = self._flat(p.detach() for p in self.parameters), self._flat(p.grad for p in self.parameters)
        losses = losses.detach().to(point.dtype, copy=True)
        if self.point is None:
            self.point, self.loss, self.gradient = point, losses, gradient
            self.direction, self.step_length = -gradient, self._first_step(gradient)
        else:
            slope = (self.gradient * self.direction).sum(1)
            accepted = losses <= self.loss + SUFFICIENT_DECREASE * self.step_length * slope  # False for NaN
            for row in accepted.nonzero().flatten().tolist():
                self._accept(row, point[row], losses[row], gradient[row])
            self.step_length = torch.where(accepted, self.step_length, self.step_length * SHRINK)
        self._assign(self.point + self.step_length[:, None] * self.direction)

    def finish(self) -> None:
        """Leave the parameters at each image's last accepted point, the best it reached."""
        if self.point is not None:
            self._assign(self.point)

    def _accept(self, row: int, point: torch.Tensor, loss: torch.Tensor, gradient: torch.Tensor) -> None:
        """Move image `row` to `point`, record the curvature pair and take the quasi-Newton direction."""
        change, gradient_change = point - self.point[row], gradient - self.gradient[row]
        curvature = float(change @ gradient_change)
        history = self.history[row]
        if curvature > MIN_CURVATURE:
            history.append((change, gradient_change, 1.0 / curvature))
            del history[: -self.history_size]
        self.point[row], self.loss[row], self.gradient[row] = point, loss, gradient
        direction = self._direction(history, gradient)
        if float(direction @ gradient) < 0:
            self.direction[row], self.step_length[row] = direction, self.learning_rate
        else:  # not a descent direction: forget the curvature and start again along the gradient
            history.clear()
            self.direction[row], self.step_length[row] = -gradient, self._first_step(gradient[None])[0]

    @staticmethod
    def _direction(history: list[tuple[torch.Tensor, torch.Tensor, float]], gradient: torch.Tensor) -> torch.Tensor:
        """-H g by the two-loop recursion, H the inverse Hessian estimate from the curvature pairs."""
        q, coefficients = gradient.clone(), []
        for change, gradient_change, rho in reversed(history):
            coefficient = rho * float(change @ q)
            q -= coefficient * gradient_change
            coefficients.append(coefficient)
        if history:
            change, gradient_change, _ = history[-1]
            q *= float(change @ gradient_change) / float(gradient_change @ gradient_change)
        for (change, gradient_change, rho), coefficient in zip(history, reversed(coefficients)):
            q += (coefficient - rho * float(gradient_change @ q)) * change
        return -q

    def _first_step(self, gradient: torch.Tensor) -> torch.Tensor:
        """Step length along -g without curvature information: at most learning_rate / ||g||_1 (as torch's L-BFGS)."""
        return self.learning_rate * gradient.abs().sum(1).clamp_min(1.0).reciprocal()

    def _flat(self, tensors) -> torch.Tensor:
        """B x N: each row's values of every tensor, in a new tensor (torch.cat copies)."""
        return torch.cat([tensor.reshape(self.batch, -1) for tensor in tensors], dim=1)

    @torch.no_grad()
    def _assign(self, flat: torch.Tensor) -> None:
        offset = 0
        for parameter in self.parameters:
            size = parameter[0].numel()
            parameter.copy_(flat[:, offset : offset + size].view_as(parameter))
            offset += size
