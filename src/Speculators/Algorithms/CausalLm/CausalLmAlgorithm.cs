using System.Globalization;
using Speculators.Data;
using Speculators.Formats;
using Speculators.Hub;
using Speculators.Modeling;
using Speculators.Training;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Speculators.Algorithms.CausalLm;

/// <summary>
/// Causal-LM pretraining behind <see cref="ITrainingAlgorithm"/> (the quickstart's target model is trained with it):
/// a Llama/Qwen/Mistral-architecture <see cref="CausalLM"/> with fp32 master weights learns next-token prediction on a
/// prepared dataset. Documents are packed into rows of <c>--total-seq-len</c> tokens with document-causal attention
/// (<see cref="DocumentCausalAttention"/>) and per-document positions; the loss is the mean cross-entropy over the
/// supervised next tokens: those whose <c>loss_mask</c> is 1 (<c>--loss-on loss_mask</c>) or every next token inside
/// a document (<c>--loss-on all</c>). The saved model is a standard HF directory (config.json + model.safetensors, plus
/// tokenizer files when <c>--tokenizer</c> is given).
/// </summary>
public sealed class CausalLmAlgorithm : ITrainingAlgorithm
{
    /// <summary>Tokenizer and generation files copied into saved models from <see cref="CausalLmTrainingOptions.Tokenizer"/>.</summary>
    public static readonly IReadOnlyList<string> TokenizerFiles =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
        "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json", "added_tokens.json",
    ];

    readonly CausalLM _model;
    readonly HfConfig _hfConfig;
    readonly PreparedDataset _data;
    readonly Device _device;
    readonly bool _lossOnAll;
    readonly ScalarType _saveDtype;
    readonly string? _tokenizerDir;
    readonly List<NamedParameter> _trainable;
    readonly double _flopsPerToken;
    readonly Dictionary<string, object?> _hyper;

    CausalLmAlgorithm(CausalLM model, HfConfig hf, PreparedDataset data, Device device, CausalLmTrainingOptions o)
    {
        _model = model;
        _hfConfig = hf;
        _data = data;
        _device = device;
        _lossOnAll = o.LossOn switch
        {
            "all" => true,
            "loss_mask" => false,
            _ => throw new SpeculatorsException($"--loss-on: expected loss_mask or all, got '{o.LossOn}'."),
        };
        _saveDtype = o.SaveDtype.Trim().ToLowerInvariant() switch
        {
            "float32" or "fp32" => ScalarType.Float32,
            "bfloat16" or "bf16" => ScalarType.BFloat16,
            _ => throw new SpeculatorsException($"--save-dtype: expected float32 or bfloat16, got '{o.SaveDtype}'."),
        };
        _tokenizerDir = o.Tokenizer;
        if (_tokenizerDir != null && !File.Exists(Path.Combine(_tokenizerDir, "tokenizer.json")) && !File.Exists(Path.Combine(_tokenizerDir, "tokenizer_config.json")))
            throw new SpeculatorsException($"--tokenizer {_tokenizerDir}: no tokenizer.json or tokenizer_config.json there.");
        _trainable = OptimizerFactory.NamedParameters(model);
        var dc = model.Config;
        long nonEmbedding = _trainable.Where(p => !p.Name.Contains("embed_tokens", StringComparison.Ordinal)).Sum(p => p.Tensor.numel());
        if (dc.TieWordEmbeddings) nonEmbedding += (long)dc.VocabSize * dc.HiddenSize; // the tied head is still a matmul
        double meanDoc = data.SeqLens.Count > 0 ? data.SeqLens.Average(x => (double)x) : 0;
        // 6 FLOPs per weight per token (forward + backward), plus attention scores and values over a document's
        // causal context (mean context ≈ half the mean document length): 12 · layers · heads · head_dim · context.
        _flopsPerToken = 6.0 * nonEmbedding + 12.0 * dc.NumLayers * dc.NumHeads * dc.HeadDim * (meanDoc / 2);
        _hyper = new Dictionary<string, object?>
        {
            ["architecture"] = dc.Family.Architecture(),
            ["hidden_size"] = dc.HiddenSize,
            ["num_hidden_layers"] = dc.NumLayers,
            ["num_attention_heads"] = dc.NumHeads,
            ["num_key_value_heads"] = dc.NumKvHeads,
            ["intermediate_size"] = dc.IntermediateSize,
            ["vocab_size"] = dc.VocabSize,
            ["parameters"] = _trainable.Sum(p => p.Tensor.numel()),
            ["loss_on"] = _lossOnAll ? "all" : "loss_mask",
        };
    }

    /// <summary>
    /// Builds the model and opens the data. The architecture comes from <paramref name="config"/>, else from
    /// <c>--from-pretrained</c> (whose weights are loaded), else from <c>--model-config</c>. Fresh weights use the HF
    /// initialization (<c>_init_weights</c>): linear and embedding weights ~ N(0, initializer_range²) (default 0.02),
    /// biases 0, norm weights 1, drawn from a generator seeded with <c>--seed</c>.
    /// </summary>
    public static CausalLmAlgorithm Create(CausalLmTrainingOptions options, TrainingContext context, HfConfig? config = null)
    {
        var run = context.Options;
        string? pretrained = string.IsNullOrWhiteSpace(run.FromPretrained) ? null : ModelLocator.Resolve(run.FromPretrained);
        HfConfig hf = config
            ?? (pretrained != null ? HfConfig.Load(pretrained)
                : options.ModelConfig != null ? HfConfig.Load(options.ModelConfig)
                : throw new SpeculatorsException("--speculator-type causal_lm needs --model-config (an HF config.json to train from scratch) or --from-pretrained (a model directory)."));
        var dc = hf.ToDecoderConfig();
        var data = PreparedDataset.Open(run.DataPath);
        CausalLM? model = null;
        try
        {
            model = CausalLM.Create(dc, ScalarType.Float32, context.Device);
            if (pretrained != null)
            {
                using var ckpt = SafeTensorsCheckpoint.Open(pretrained);
                model.LoadWeights(ckpt);
                Log.Info($"causal_lm: fine-tuning {pretrained}");
            }
            else
            {
                InitializeHf(model, run.Seed, hf.InitializerRange ?? 0.02);
            }
            foreach (var (_, p) in model.Weights()) p.requires_grad = true;
            return new CausalLmAlgorithm(model, hf, data, context.Device, options);
        }
        catch
        {
            model?.Dispose();
            data.Dispose();
            throw;
        }
    }

    /// <summary>HF <c>_init_weights</c> for Llama-style models, deterministic in <paramref name="seed"/>.</summary>
    public static void InitializeHf(CausalLM model, long seed, double std)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed, torch.CPU);
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in model.Weights())
        {
            Tensor value = name.EndsWith("norm.weight", StringComparison.Ordinal) ? torch.ones(p.shape, ScalarType.Float32)
                : name.EndsWith(".bias", StringComparison.Ordinal) ? torch.zeros(p.shape, ScalarType.Float32)
                : torch.empty(p.shape, ScalarType.Float32, torch.CPU).normal_(0, std, gen);
            p.copy_(value);
        }
    }

    public string Name => "causal_lm";
    public CausalLM Model => _model;
    nn.Module ITrainingAlgorithm.Model => _model;
    public IReadOnlyList<NamedParameter> TrainableParameters => _trainable;
    public IReadOnlyList<int> RowLengths => _data.SeqLens;
    public double TrainingFlopsPerToken => _flopsPerToken;
    public IReadOnlyDictionary<string, object?> Hyperparameters => _hyper;

    public ValueTask<ITrainingBatch> LoadBatchAsync(IReadOnlyList<int> rows, BatchContext context, CancellationToken cancellationToken) =>
        ValueTask.FromResult<ITrainingBatch>(Collate(rows, context.TotalSequenceLength));

    /// <summary>Packs <paramref name="rows"/> into one row of <paramref name="totalLength"/> tokens (the last document truncated to fit).</summary>
    public CausalLmBatch Collate(IReadOnlyList<int> rows, int totalLength)
    {
        int vocab = _model.Config.VocabSize;
        var lengths = rows.Select(r => Math.Min(_data.SeqLens[r], totalLength)).ToArray();
        var layout = MultipackCollation.Layout(lengths, totalLength);
        var ids = new long[totalLength];
        var labels = new long[totalLength];
        Array.Fill(labels, -100L);
        long supervised = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            int n = layout.Lengths[i], off = layout.Offsets[i];
            if (n == 0) continue;
            var row = _data.GetRow(rows[i]);
            for (int t = 0; t < n; t++)
            {
                long id = row.InputIds[t];
                if (id < 0 || id >= vocab)
                    throw new SpeculatorsException($"{_data.Directory}: row {rows[i]} has token id {id} at position {t}, outside the model's vocabulary [0, {vocab}).");
                ids[off + t] = id;
            }
            for (int t = 0; t + 1 < n; t++)
            {
                if (_lossOnAll || row.LossMask[t + 1] != 0)
                {
                    labels[off + t] = row.InputIds[t + 1];
                    supervised++;
                }
            }
        }
        var shape = new long[] { 1, totalLength };
        return new CausalLmBatch(
            torch.tensor(ids, shape, ScalarType.Int64).to(_device).DetachFromDisposeScope(),
            torch.tensor(labels, shape, ScalarType.Int64).to(_device).DetachFromDisposeScope(),
            layout.PositionIdsTensor(_device).DetachFromDisposeScope(),
            layout.Offsets, layout.Lengths, totalLength, layout.UsedTokens, supervised, rows.Count);
    }

    public StepOutput Forward(ITrainingBatch batch, bool training)
    {
        if (batch is not CausalLmBatch b) throw new ArgumentException($"expected a {nameof(CausalLmBatch)}, got {batch.GetType().Name}", nameof(batch));
        using var scope = NewDisposeScope();
        var backend = new DocumentCausalAttention(b.Offsets, b.Lengths, b.TotalLength);
        var hidden = _model.model.Forward(b.InputIds, b.PositionIds, backend).Hidden; // [1, T, H]
        var labels = b.Labels.view(-1);
        var index = labels.ge(0).nonzero().view(-1);
        long n = index.shape[0];
        Tensor loss, lossSum, correct;
        if (n == 0)
        {
            loss = hidden.sum().mul(0.0); // keeps the graph; gradients are zero
            lossSum = torch.zeros(1, ScalarType.Float32).squeeze();
            correct = torch.zeros(1, ScalarType.Float32).squeeze();
        }
        else
        {
            var h = hidden.view(-1, hidden.shape[2]).index_select(0, index);
            var normed = _model.model.norm.call(h);
            var logits = Autocast.Float32(Autocast.Linear(normed, _model.LmHeadWeight)); // [n, V]
            var targets = labels.index_select(0, index);
            lossSum = F.cross_entropy(logits, targets, reduction: nn.Reduction.Sum);
            loss = lossSum.div(n);
            correct = logits.detach().argmax(-1).eq(targets).sum().to(ScalarType.Float32);
        }
        var total = torch.tensor((float)n);
        var metrics = new Dictionary<string, Tensor>
        {
            ["loss_sum"] = lossSum.detach().to(ScalarType.Float32).cpu().MoveToOuterDisposeScope(),
            ["loss_total"] = total.alias().MoveToOuterDisposeScope(),
            ["acc_sum"] = correct.cpu().MoveToOuterDisposeScope(),
            ["acc_total"] = total.MoveToOuterDisposeScope(),
        };
        return new StepOutput(loss.MoveToOuterDisposeScope(), metrics);
    }

    public void AddDerivedValidationMetrics(IDictionary<string, double> normalizedValidationMetrics)
    {
        if (normalizedValidationMetrics.TryGetValue("loss", out double loss))
            normalizedValidationMetrics["perplexity"] = Math.Exp(Math.Min(loss, 700));
    }

    /// <summary>config.json (the source config with the saved dtype), model.safetensors, tokenizer files; then re-read and checked.</summary>
    public void SaveModel(string directory)
    {
        string dtypeName = Precision.Name(_saveDtype);
        var cfg = HfConfig.Parse(_hfConfig.ToJson(), Path.Combine(directory, "config.json"));
        cfg.Architectures ??= [_model.Config.Family.Architecture()];
        cfg.ModelType ??= _model.Config.Family.ModelType();
        if (cfg.Dtype != null) cfg.Dtype = dtypeName;
        cfg.TorchDtype = dtypeName;
        cfg.Save(Path.Combine(directory, "config.json"));
        _model.SaveWeights(directory, _saveDtype);
        if (_tokenizerDir != null)
            foreach (var f in TokenizerFiles)
            {
                string src = Path.Combine(_tokenizerDir, f);
                if (File.Exists(src)) File.Copy(src, Path.Combine(directory, f), overwrite: true);
            }
        Validate(directory);
    }

    /// <summary>Checks a saved directory: its config resolves to this architecture and every weight is present with its shape and dtype.</summary>
    public void Validate(string directory)
    {
        var dc = HfConfig.Load(directory).ToDecoderConfig();
        var mine = _model.Config;
        if (dc.Family != mine.Family || dc.VocabSize != mine.VocabSize || dc.HiddenSize != mine.HiddenSize || dc.NumLayers != mine.NumLayers
            || dc.NumHeads != mine.NumHeads || dc.NumKvHeads != mine.NumKvHeads || dc.HeadDim != mine.HeadDim || dc.IntermediateSize != mine.IntermediateSize
            || dc.TieWordEmbeddings != mine.TieWordEmbeddings || dc.Rope != mine.Rope)
            throw new SpeculatorsException($"{directory}/config.json does not describe the trained model after saving.");
        using var ckpt = SafeTensorsCheckpoint.Open(directory);
        foreach (var (name, p) in _model.Weights())
        {
            if (!ckpt.Contains(name)) throw new SpeculatorsException($"{directory}: saved weights lack '{name}'.");
            var info = ckpt.Info(name);
            if (!info.Shape.SequenceEqual(p.shape) || !info.DType.TryToTorch(out var t) || t != _saveDtype)
                throw new SpeculatorsException($"{directory}: '{name}' was saved as {info.DType.Name()} {info.ShapeText}, expected {Precision.Name(_saveDtype)} [{string.Join(", ", p.shape)}].");
        }
    }

    public void LoadModel(string directory)
    {
        using var ckpt = SafeTensorsCheckpoint.Open(directory);
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in _model.Weights())
        {
            if (!ckpt.Contains(name)) throw new SpeculatorsException($"{directory}: no weight '{name}'.");
            ckpt.ReadInto(name, p, $"parameter '{name}'");
        }
    }

    public void Dispose()
    {
        _model.Dispose();
        _data.Dispose();
    }
}

/// <summary>One packed row for <see cref="CausalLmAlgorithm"/>: token ids, next-token labels (−100 = not scored), per-document positions.</summary>
public sealed class CausalLmBatch(Tensor inputIds, Tensor labels, Tensor positionIds, int[] offsets, int[] lengths, int totalLength,
    long tokens, long supervisedTokens, int samples) : ITrainingBatch
{
    public Tensor InputIds { get; } = inputIds;
    public Tensor Labels { get; } = labels;
    public Tensor PositionIds { get; } = positionIds;
    public int[] Offsets { get; } = offsets;
    public int[] Lengths { get; } = lengths;
    public int TotalLength { get; } = totalLength;
    public long Tokens { get; } = tokens;
    public long SupervisedTokens { get; } = supervisedTokens;
    public int Samples { get; } = samples;
    public int SkippedRows => 0;

    public void Dispose()
    {
        InputIds.Dispose();
        Labels.Dispose();
        PositionIds.Dispose();
    }
}

/// <summary><c>--speculator-type causal_lm</c>.</summary>
public sealed class CausalLmAlgorithmFactory : ITrainingAlgorithmFactory
{
    public string Name => "causal_lm";
    public string Description => "causal-LM pretraining of a Llama/Qwen/Mistral-architecture model (e.g. a small target model)";
    public ITrainingAlgorithm Create(TrainingContext context) => CausalLmAlgorithm.Create(context.Options.CausalLm, context);
}
