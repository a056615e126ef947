"""bmxnet-stats NAME [--input-shape 1,3,224,224] [--initial-layers ...] [--json]

Per-layer binary/float MACs and parameters of a model-zoo network, and the totals the BNN
papers report: BOPs, FLOPs, OPs = BOPs/64 + FLOPs, size with binary weights at 1 bit.
"""
import argparse
import json
import sys


def parse_shape(text):
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integers, got %r" % text) from None
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError("expected N,C,H,W with positive values, got %r" % text)
    return shape


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bmxnet-stats", description=__doc__.split("\n\n")[1])
    parser.add_argument("model", help="model-zoo name, e.g. resnete18")
    parser.add_argument("--input-shape", type=parse_shape, default=(1, 3, 224, 224))
    parser.add_argument("--initial-layers", choices=["imagenet", "grouped_stem", "thumbnail"])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    import bmxnet
    from bmxnet import stats
    options = {"classes": args.classes}
    if args.initial_layers:
        options["initial_layers"] = args.initial_layers
    try:
        net = bmxnet.model_zoo.get_model(args.model, **options)
        net.initialize()
        result = stats.summary(net, args.input_shape)
    except (ValueError, TypeError) as error:
        print("bmxnet-stats: error: %s" % error, file=sys.stderr)
        return 1
    except Exception as error:  # e.g. an input too small for the network: one line, no traceback
        print("bmxnet-stats: error: %s" % str(error).strip().splitlines()[-1], file=sys.stderr)
        return 1
    if args.json:
        totals = result.as_dict()
        totals.pop("layers")
        print(json.dumps(dict(totals, model=args.model, input_shape=list(args.input_shape))))
    else:
        print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
