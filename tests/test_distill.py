import math

import pytest
import torch

from kdlib.kd import losses

LN3 = math.log(3.0)


def test_kl_golden_value_and_temperature_scaling():
    # p_T = (3/4, 1/4), p_S = (1/2, 1/2): KL = 3/4 ln 1.5 + 1/4 ln 0.5
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    student = torch.zeros(1, 2)
    assert losses.kl_divergence(student, torch.tensor([[LN3, 0.0]]), 1.0).item() == pytest.approx(expected, rel=1e-5)
    # the same distributions at T=2 come from doubled logits; the T² factor makes it 4x
    assert losses.kl_divergence(student, torch.tensor([[2 * LN3, 0.0]]), 2.0).item() == pytest.approx(
        4 * expected, rel=1e-5
    )


def test_class_correlation_golden_value():
    # P_T = [[.75, .25]], P_S = [[.5, .5]]: ||P_T'P_T - P_S'P_S||_F^2 = 0.140625, over C = 2
    loss = losses.class_correlation(torch.zeros(1, 2), torch.tensor([[LN3, 0.0]]), 1.0)
    assert loss.item() == pytest.approx(0.0703125, rel=1e-5)


def test_batch_correlation_golden_value():
    # P_T = [[.75, .25], [.5, .5]], P_S all 1/2: Gram matrices differ only at (0, 0) by 0.125; over B = 2
    loss = losses.batch_correlation(torch.zeros(2, 2), torch.tensor([[LN3, 0.0], [0.0, 0.0]]), 1.0)
    assert loss.item() == pytest.approx(0.0078125, rel=1e-5)


def test_multi_level_sums_the_three_levels_over_temperatures():
    torch.manual_seed(0)
    zs, zt = torch.randn(6, 5), torch.randn(6, 5)
    total, parts = losses.multi_level(zs, zt, temperatures=(2.0, 4.0), weights=(1.0, 2.0, 3.0))
    by_hand = sum(
        losses.kl_divergence(zs, zt, t)
        + 2 * losses.class_correlation(zs, zt, t)
        + 3 * losses.batch_correlation(zs, zt, t)
        for t in (2.0, 4.0)
    )
    assert total.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert set(parts) == {"instance", "class", "batch"}


def test_losses_vanish_when_student_equals_teacher_and_only_the_student_gets_gradients():
    torch.manual_seed(0)
    z = torch.randn(4, 7)
    total, _ = losses.multi_level(z, z)
    assert total.item() == pytest.approx(0.0, abs=1e-5)
    student, teacher = torch.randn(4, 7, requires_grad=True), torch.randn(4, 7, requires_grad=True)
    losses.multi_level(student, teacher)[0].backward()
    assert student.grad.abs().sum() > 0 and teacher.grad is None


def test_embedding_cosine_values_and_shape_check():
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert losses.embedding_cosine(e, e).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.embedding_cosine(e, torch.tensor([[0.0, 1.0], [3.0, 0.0]])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal shapes"):
        losses.embedding_cosine(torch.zeros(2, 3), torch.zeros(2, 4))


def test_distillation_pulls_a_student_to_its_teacher():
    torch.manual_seed(0)
    teacher = torch.randn(8, 5) * 3
    student = torch.zeros(8, 5, requires_grad=True)
    opt = torch.optim.Adam([student], lr=0.1)
    start = losses.multi_level(student, teacher)[0].item()
    for _ in range(200):
        opt.zero_grad()
        losses.multi_level(student, teacher)[0].backward()
        opt.step()
    assert losses.multi_level(student, teacher)[0].item() < 0.01 * start
    assert (student.argmax(1) == teacher.argmax(1)).all()
