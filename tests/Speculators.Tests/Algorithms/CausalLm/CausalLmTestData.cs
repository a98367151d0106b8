using Speculators.Data;

namespace Speculators.Tests.Algorithms.CausalLm;

/// <summary>Tiny learnable data and a tiny Llama config for causal-LM and trainer end-to-end tests.</summary>
public static class CausalLmTestData
{
    public const int Vocab = 48;

    /// <summary>
    /// Rows of arithmetic sequences (start, start+step, … mod V): a 3-token "prompt" with loss_mask 0, then supervised
    /// tokens. Next tokens are predictable from the previous two, so the loss falls within a few epochs.
    /// </summary>
    public static string WriteDataset(string dir, int rows = 48, int minLen = 8, int maxLen = 30, long[]? badRow = null)
    {
        using (var w = new PreparedDatasetWriter(dir))
        {
            var rnd = new Random(11);
            for (int i = 0; i < rows; i++)
            {
                int len = rnd.Next(minLen, maxLen + 1);
                int start = rnd.Next(Vocab), step = 1 + rnd.Next(3);
                var ids = Enumerable.Range(0, len).Select(k => (long)((start + k * step) % Vocab)).ToArray();
                var mask = Enumerable.Range(0, len).Select(k => k < 3 ? 0L : 1L).ToArray();
                if (badRow != null && i == 1) { ids = badRow; mask = new long[badRow.Length]; }
                w.Append(ids, mask);
            }
            w.Complete();
        }
        return dir;
    }

    /// <summary>A Llama config.json (H=32, 2 layers, 4 query / 2 KV heads, V=48) in <paramref name="dir"/>.</summary>
    public static string WriteConfig(string dir, bool tied = false, int layers = 2)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), $$"""
            {
              "architectures": ["LlamaForCausalLM"],
              "model_type": "llama",
              "vocab_size": {{Vocab}},
              "hidden_size": 32,
              "intermediate_size": 64,
              "num_hidden_layers": {{layers}},
              "num_attention_heads": 4,
              "num_key_value_heads": 2,
              "max_position_embeddings": 128,
              "rms_norm_eps": 1e-06,
              "rope_theta": 10000.0,
              "tie_word_embeddings": {{(tied ? "true" : "false")}},
              "initializer_range": 0.02,
              "bos_token_id": 1,
              "eos_token_id": 2,
              "torch_dtype": "float32"
            }
            """);
        return dir;
    }
}
