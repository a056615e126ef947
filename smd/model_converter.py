"""model-converter PREFIX-symbol.json PREFIX-EPOCH.params [-o OUTPREFIX]

Packs the 1-bit weights of a trained bmxnet model into bits (about 32x smaller binary
layers) for the xnor-popcount kernels. The input is checked whole before anything is
written; it is never overwritten. A problem with the input or the output files is one line
and exit code 1; exit code 2 is a bug of the converter's (or a broken installation).
"""
import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="model-converter", description=__doc__.split("\n\n")[1])
    parser.add_argument("symbol", help="PREFIX-symbol.json of the trained model")
    parser.add_argument("params", help="PREFIX-EPOCH.params of the trained model")
    parser.add_argument("-o", "--out-prefix", help="output prefix (default: binarized_PREFIX next to the input)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the output paths")
    args = parser.parse_args(argv)
    try:
        import bmxnet
        from bmxnet.converter import ConversionError
    except ImportError as error:
        print("model-converter: error: %s" % error, file=sys.stderr)
        return 2
    try:
        symbol_out, params_out, report = bmxnet.convert(args.symbol, args.params, args.out_prefix)
    except ConversionError as error:
        print("model-converter: error: %s" % error, file=sys.stderr)
        return 1
    except MemoryError:
        print("model-converter: error: out of memory reading %s" % args.params, file=sys.stderr)
        return 1
    except Exception as error:  # a bug of ours must still not print a traceback at users
        print("model-converter: error: unexpected %s: %s (please report)"
              % (type(error).__name__, str(error).splitlines()[0] if str(error) else ""), file=sys.stderr)
        return 2
    if not args.quiet:
        print(report)
    print("wrote %s (%d bytes) and %s (%d bytes)" % (symbol_out, os.path.getsize(symbol_out),
                                                     params_out, os.path.getsize(params_out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
