"""Training on several machines: MXNet's dist_* kvstores, and rank 0's weights for every worker."""
import mxnet as mx

from .cli import UsageError
from .setup import error_reason


def create_kvstore(args):
    """The kvstore (a dist_* store connects to the parameter servers now) and (rank, workers)."""
    if args.kvstore.startswith("dist"):
        try:
            kv = mx.kv.create(args.kvstore)
        except mx.base.MXNetError as error:
            raise UsageError("--kvstore %s: %s" % (args.kvstore, error_reason(error))) from None
        return kv, (kv.rank, kv.num_workers)
    return ("local" if args.kvstore == "device" and not args.num_gpus else args.kvstore), (0, 1)


def broadcast_weights(trainer):
    """Every worker starts from rank 0's weights, sent before the first gradient is pushed.

    Trainer.step would broadcast lazily, pushing the parameter arrays themselves right
    before the first gradients. After a oneDNN forward those arrays may be in oneDNN layout,
    and MXNet 1.9.1 then lets a pull overtake rank 0's initial push: the server stops with
    "init N first", or a worker pulls summed gradients as its weights (7 of 15 loaded runs).
    Default-layout copies do not have that race."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    kv = trainer._kvstore
    for param in trainer._params_to_init:
        initial = mx.nd.array(param.data().asnumpy())
        kv.broadcast(trainer._param2idx[param.name], initial, out=param.list_data())
    trainer._params_to_init = []
    mx.nd.waitall()
