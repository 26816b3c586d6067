"""refnet._blas: one BLAS thread inside overlapping blocks on several threads, restored after."""
import threading

import pytest

from refnet._blas import (_controls, blas_controlled, blas_thread_counts, fixed_blas_threads,
                          set_blas_threads)


def test_overlapping_blocks_keep_one_thread_until_the_last_leaves():
    if not blas_controlled():
        pytest.skip("NumPy's BLAS is not an OpenBLAS whose thread count refnet can set")
    before = blas_thread_counts()
    set_blas_threads(2)
    # An OpenBLAS loaded while OPENBLAS_NUM_THREADS=1 was set (earlier tests start worker
    # processes with it) cannot go above 1: the counts to restore are what each library took.
    target = blas_thread_counts()
    try:
        if 2 not in target:
            pytest.skip("no OpenBLAS in this process accepts 2 threads, so restoring cannot be "
                        "told apart from staying on 1")
        entered, release, seen = threading.Event(), threading.Event(), []

        def other():
            with fixed_blas_threads():
                entered.set()
                release.wait(10)
                seen.append(blas_thread_counts())

        t = threading.Thread(target=other)
        with fixed_blas_threads():
            assert set(blas_thread_counts()) == {1}
            t.start()
            entered.wait(10)
        # this thread's block has left, the other's has not: still one thread
        assert set(blas_thread_counts()) == {1}
        release.set()
        t.join(10)
        assert seen and set(seen[0]) == {1}
        assert blas_thread_counts() == target     # the counts from before the first block
    finally:
        for n, (_, set_) in zip(before, _controls()):   # the process's own setting again
            set_(n)


def test_inside_on_this_thread_is_per_thread():
    """The hot path skips entering again only when its own thread is inside: a thread that
    is not must enter itself (another thread leaving would restore the counts under it)."""
    from refnet._blas import in_fixed_blas_threads, inside_on_this_thread

    seen = {}
    entered, leave = threading.Event(), threading.Event()

    def other():
        with fixed_blas_threads():
            entered.set()
            leave.wait(10)

    t = threading.Thread(target=other)
    t.start()
    entered.wait(10)
    seen["process"], seen["here"] = in_fixed_blas_threads(), inside_on_this_thread()
    with fixed_blas_threads():
        with fixed_blas_threads():
            seen["nested"] = inside_on_this_thread()
        seen["outer"] = inside_on_this_thread()
    seen["after"] = inside_on_this_thread()
    leave.set()
    t.join()
    assert seen == {"process": True, "here": False, "nested": True, "outer": True,
                    "after": False}
