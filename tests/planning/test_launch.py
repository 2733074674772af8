"""Launch-script parsing: each launcher form and each shell trap."""

from pathlib import Path

from atlas.planning.launch import parse_launch_script, repair_continuations
from atlas.planning.setup import setup_from_script

FIXTURES = Path(__file__).parent / "fixtures"


def test_accelerate_num_processes_and_mixed_precision():
    s = parse_launch_script("accelerate launch --num_processes 2 --multi_gpu --mixed_precision bf16 main.py --train_batch_size=16\n")
    cmd = s.training
    assert (cmd.launcher, cmd.script, cmd.world_size) == ("accelerate", "main.py", 2)
    assert cmd.launcher_args["mixed_precision"] == "bf16" and cmd.launcher_args["multi_gpu"] is True
    assert cmd.args["train_batch_size"] == "16"


def test_torchrun_nproc_times_nnodes():
    cmd = parse_launch_script("torchrun --nnodes=2 --nproc_per_node=4 train.py --lr 3e-4\n").training
    assert cmd.launcher == "torchrun" and cmd.world_size == 8 and cmd.args["lr"] == "3e-4"


def test_python_m_torch_distributed_launch():
    cmd = parse_launch_script("python -m torch.distributed.launch --nproc_per_node 3 main.py --x 1\n").training
    assert cmd.launcher == "torchrun" and cmd.world_size == 3 and cmd.script == "main.py"


def test_deepspeed_include_and_config():
    cmd = parse_launch_script('deepspeed --include="localhost:0,1,2,3" main.py --deepspeed="./configs/zero2.json"\n').training
    assert cmd.launcher == "deepspeed" and cmd.world_size == 4
    setup = setup_from_script('deepspeed --num_gpus 2 main.py --deepspeed=./configs/zero3.json --train_batch_size=8\n')
    assert setup.values["strategy"] == "zero3" and setup.world_size == 2


def test_plain_python_is_one_process_even_with_many_visible_gpus():
    setup = setup_from_script("CUDA_VISIBLE_DEVICES=0,1 python main.py --train_batch_size=8\n")
    assert setup.world_size == 1 and setup.launch.training.env["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_env_exports_vars_and_continuations():
    text = ("export BS=12\nOUT=/tmp/run\naccelerate launch --num_processes 2 \\\n  main.py \\\n"
            "  --train_batch_size=$BS \\\n  --output_dir=${OUT}/x --zzz=$MISSING\n")
    s = parse_launch_script(text)
    assert s.training.args["train_batch_size"] == "12" and s.training.args["output_dir"] == "/tmp/run/x"
    assert s.unresolved == ["MISSING"]


def test_unknown_flags_are_listed_not_dropped():
    setup = setup_from_script("python main.py --train_batch_size=4 --my_new_flag=3 --image_aug\n")
    assert setup.unknown_flags == ["--my_new_flag"] and setup.values["image_aug"] is True


def test_rdt_batch_size_is_per_device():
    """Seed 002: --train_batch_size=16 on 2 processes is 32 in total, not 16."""
    setup = setup_from_script("accelerate launch --num_processes 2 --multi_gpu main.py --train_batch_size=16\n")
    assert setup.effective_batch_size == 32


def test_comment_after_backslash_ends_the_command():
    text = (FIXTURES / "seed000_full_modification.sh").read_text()
    assert "# 改为4" in text  # verbatim from seed 000
    s = parse_launch_script(text)
    kinds = [i.kind for i in s.issues]
    assert kinds.count("comment_after_backslash") == 2 and "orphan_flags" in kinds
    dropped = [f for i in s.issues for f in i.dropped]
    assert "--gradient_accumulation_steps=8" in dropped and "--lr_warmup_steps=5000" in dropped
    assert "gradient_accumulation_steps" not in s.training.args and s.training.args["train_batch_size"] == "4"
    fixed = parse_launch_script(repair_continuations(text))
    assert not fixed.issues and fixed.training.args["gradient_accumulation_steps"] == "8"


def test_seed000_scripts_reach_256():
    for name, micro in (("seed000_32x1x8.sh", 32), ("seed000_4x8x8.sh", 4)):
        setup = setup_from_script((FIXTURES / name).read_text())
        assert setup.values["micro_batch_size"] == micro and setup.effective_batch_size == 256
