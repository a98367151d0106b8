using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Inference;

/// <summary>
/// <see cref="IVerifier"/> over our HF models (<see cref="CausalLM"/>, every supported family): each session owns a
/// <see cref="KvCache"/>; a step right-pads the rows to the longest, passes an attention mask when rows differ,
/// asks for logits at every new token (or each row's last) and for the hidden states of the draft's capture ids.
/// </summary>
public sealed class CausalLmVerifier : IVerifier, IDisposable
{
    readonly bool _owns;

    /// <param name="model">the loaded verifier</param>
    /// <param name="ownsModel">dispose the model with this object</param>
    public CausalLmVerifier(CausalLM model, bool ownsModel = false)
    {
        Model = model;
        _owns = ownsModel;
    }

    /// <summary>Loads an HF model directory (frozen weights) in <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public static CausalLmVerifier Load(string directory, ScalarType dtype, Device device) =>
        new(CausalLM.LoadFromDirectory(directory, dtype, device), ownsModel: true);

    public CausalLM Model { get; }
    public int VocabSize => Model.Config.VocabSize;
    public int HiddenSize => Model.Config.HiddenSize;
    public int NumLayers => Model.Config.NumLayers;
    public int MaxContextLength => Model.Config.MaxPositionEmbeddings;
    public Device Device => Model.Device;
    public string Description =>
        $"{Model.Config.Family.Architecture()} ({Model.Config.NumLayers} layers, hidden {Model.Config.HiddenSize}, vocab {Model.Config.VocabSize}, {Model.DType})" +
        (Model.SourceDirectory != null ? " from " + Model.SourceDirectory : "");

    public IVerifierSession StartSession(int batchSize, IReadOnlyList<int> captureLayerIds)
    {
        var ids = AuxLayerIds.NormalizeCapture(captureLayerIds, Model.Config.NumLayers);
        if (ids.Length != captureLayerIds.Count || !ids.SequenceEqual(captureLayerIds))
            throw new SpeculatorsException(
                $"the draft needs verifier hidden states [{string.Join(", ", captureLayerIds)}]; they must be distinct, ascending and in [0, {Model.Config.NumLayers}].");
        return new Session(this, batchSize, ids);
    }

    public void Dispose()
    {
        if (_owns) Model.Dispose();
    }

    sealed class Session : IVerifierSession
    {
        readonly CausalLmVerifier _v;
        readonly KvCache _cache;
        readonly int[] _capture;

        public Session(CausalLmVerifier v, int batch, int[] capture)
        {
            _v = v;
            _capture = capture;
            _cache = v.Model.CreateCache(batch);
        }

        public int BatchSize => _cache.BatchSize;
        public IReadOnlyList<long> Lengths => _cache.Lengths;

        public VerifierStep Extend(IReadOnlyList<IReadOnlyList<long>> tokens, bool lastOnly)
        {
            if (tokens.Count != BatchSize) throw new ArgumentException($"expected {BatchSize} rows, got {tokens.Count}", nameof(tokens));
            var counts = tokens.Select(t => t.Count).ToArray();
            int t = counts.Max();
            if (t == 0) throw new ArgumentException("every row is empty", nameof(tokens));
            int b = BatchSize;
            var ids = new long[b * t];
            var mask = new bool[b * t];
            bool padded = false;
            for (int r = 0; r < b; r++)
            {
                for (int j = 0; j < counts[r]; j++)
                {
                    ids[r * t + j] = tokens[r][j];
                    mask[r * t + j] = true;
                }
                padded |= counts[r] != t;
            }
            using var scope = NewDisposeScope();
            var device = _v.Model.Device;
            var input = torch.tensor(ids, [b, t], device: device);
            var attention = padded ? torch.tensor(mask, [b, t], device: device) : null;
            using var output = _v.Model.Forward(input, cache: _cache, attentionMask: attention, captureLayerIds: _capture,
                logits: lastOnly ? LogitsSelection.Last : LogitsSelection.All);
            var logits = output.Logits!.alias().MoveToOuterDisposeScope();
            var aux = output.HiddenStates?.reshape(b, t, -1).MoveToOuterDisposeScope();
            return new VerifierStep { Logits = logits, AuxHidden = aux, Counts = counts };
        }

        public void Truncate(IReadOnlyList<long> lengths) => _cache.Truncate(lengths);

        public void Dispose() => _cache.Dispose();
    }
}
