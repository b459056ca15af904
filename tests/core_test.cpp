// The report on hand-built models: every expected number is worked out in the comment beside it.
#include <gtest/gtest.h>

#include "footprint/footprint.h"

namespace fp = footprint;

namespace {

fp::TensorInfo tensor(const std::string& name, std::vector<int64_t> shape,
                      fp::DType dtype = fp::DType::kFloat32,
                      fp::TensorRole role = fp::TensorRole::kParameter, bool trainable = true,
                      const std::string& storage = "") {
  fp::TensorInfo t;
  t.name = name;
  t.shape = std::move(shape);
  t.dtype = dtype;
  t.role = role;
  t.trainable = role == fp::TensorRole::kParameter && trainable;
  t.storage = storage.empty() ? name : storage;
  return t;
}

// The two-conv model of the second seed: conv0 = Conv2d(1,16,3), conv1 = Conv2d(16,32,3).
fp::Model two_conv() {
  fp::Model m;
  m.source = "two_conv";
  m.tensors = {tensor("conv0.weight", {16, 1, 3, 3}), tensor("conv0.bias", {16}),
               tensor("conv1.weight", {32, 16, 3, 3}), tensor("conv1.bias", {32})};
  return m;
}

}  // namespace

TEST(DType, SizesAndNames) {
  EXPECT_EQ(fp::dtype_bits(fp::DType::kBFloat16), 16);
  EXPECT_EQ(fp::dtype_bits(fp::DType::kComplex128), 128);
  EXPECT_EQ(*fp::dtype_parse("torch.float16"), fp::DType::kFloat16);
  EXPECT_EQ(*fp::dtype_parse("BF16"), fp::DType::kBFloat16);
  EXPECT_EQ(*fp::dtype_parse("F8_E4M3"), fp::DType::kFloat8E4M3);
  EXPECT_FALSE(fp::dtype_parse("F7").has_value());
  EXPECT_EQ(fp::dtype_name(fp::DType::kInt64), "int64");
}

TEST(Precision, ParsesListsAndRejectsUnknown) {
  auto list = fp::precision_parse_list("fp32,fp16,bf16,fp8,int8,int4");
  ASSERT_EQ(list.size(), 6u);
  EXPECT_EQ(list[5], fp::Precision::kInt4);
  EXPECT_THROW(fp::precision_parse_list("fp32,fp12"), fp::Error);
  EXPECT_THROW(fp::precision_parse_list(""), fp::Error);
}

TEST(Precision, BytesPerTensor) {
  // 3 float32 elements: 12 bytes stored, 6 at fp16, 3 at int8, and at int4 1.5 bytes round up to 2.
  EXPECT_EQ(fp::precision_bytes(fp::Precision::kStored, fp::DType::kFloat32, 3), 12);
  EXPECT_EQ(fp::precision_bytes(fp::Precision::kFp16, fp::DType::kFloat32, 3), 6);
  EXPECT_EQ(fp::precision_bytes(fp::Precision::kInt8, fp::DType::kFloat32, 3), 3);
  EXPECT_EQ(fp::precision_bytes(fp::Precision::kInt4, fp::DType::kFloat32, 3), 2);
  // Integer tensors keep their type when a model is cast: 3 int64 elements stay 24 bytes.
  EXPECT_EQ(fp::precision_bytes(fp::Precision::kFp16, fp::DType::kInt64, 3), 24);
}

TEST(Params, TwoConvModelCountsBothConvs) {
  fp::ParamOptions o;
  o.precisions = {fp::Precision::kFp32, fp::Precision::kFp16};
  auto r = fp::params(two_conv(), o);
  // conv0: 16*1*3*3 + 16 = 160; conv1: 32*16*3*3 + 32 = 4,640; together 4,800.
  EXPECT_EQ(r.params.numel, 4800);
  EXPECT_EQ(r.params.tensors, 4);
  EXPECT_EQ(r.trainable.numel, 4800);
  EXPECT_EQ(r.frozen.numel, 0);
  EXPECT_EQ(r.params.bytes, 4800 * 4);
  EXPECT_EQ(r.params.bytes_at[1], 4800 * 2);
  // Bits at fp32: 4,800 x 32 = 153,600 (the article prints 148,480 = 4,640 x 32: conv1 alone).
  EXPECT_EQ(r.params.bytes_at[0] * 8, 153600);
  ASSERT_EQ(r.modules.size(), 3u);
  EXPECT_EQ(r.modules[1].path, "conv0");
  EXPECT_EQ(r.modules[1].params.numel, 160);
  EXPECT_EQ(r.modules[2].params.numel, 4640);
}

TEST(Params, TiedTensorsCountOnceAndAreMarked) {
  fp::Model m;
  // An embedding 100 x 16 shared with the output head, plus a 16 -> 16 linear.
  m.tensors = {tensor("embed.weight", {100, 16}, fp::DType::kFloat32, fp::TensorRole::kParameter,
                      true, "s0"),
               tensor("body.weight", {16, 16}), tensor("body.bias", {16}),
               tensor("head.weight", {100, 16}, fp::DType::kFloat32, fp::TensorRole::kParameter,
                      true, "s0")};
  auto r = fp::params(m);
  // 1,600 + 256 + 16 = 1,872: the head's weight is the embedding's.
  EXPECT_EQ(r.params.numel, 1872);
  EXPECT_EQ(r.tied, 1);
  ASSERT_EQ(r.tensors.size(), 4u);
  EXPECT_EQ(r.tensors[3].tied_to, "embed.weight");
  EXPECT_TRUE(r.tensors[0].tied_to.empty());
  // The head module owns nothing new.
  for (const auto& row : r.modules)
    if (row.path == "head") EXPECT_EQ(row.params.numel, 0);
}

TEST(Params, SameStorageDifferentViewsAreNotTied) {
  fp::Model m;
  auto a = tensor("qkv.q", {4, 4}, fp::DType::kFloat32, fp::TensorRole::kParameter, true, "s");
  auto b = a;
  b.name = "qkv.k";
  b.storage_offset = 16;  // the next 16 elements of the same storage
  m.tensors = {a, b};
  auto r = fp::params(m);
  EXPECT_EQ(r.params.numel, 32);
  EXPECT_EQ(r.tied, 0);
}

TEST(Params, BuffersFrozenAndDtypesApart) {
  fp::Model m;
  m.tensors = {tensor("bn.weight", {8}),
               tensor("bn.bias", {8}, fp::DType::kFloat32, fp::TensorRole::kParameter, false),
               tensor("bn.running_mean", {8}, fp::DType::kFloat32, fp::TensorRole::kBuffer),
               tensor("bn.num_batches_tracked", {}, fp::DType::kInt64, fp::TensorRole::kBuffer)};
  fp::ParamOptions o;
  o.precisions = {fp::Precision::kFp16};
  auto r = fp::params(m, o);
  EXPECT_EQ(r.params.numel, 16);
  EXPECT_EQ(r.trainable.numel, 8);
  EXPECT_EQ(r.frozen.numel, 8);
  EXPECT_EQ(r.buffers.numel, 9);  // 8 running means + the scalar counter
  EXPECT_EQ(r.buffers.bytes, 8 * 4 + 8);
  // At fp16: the float buffer halves, the int64 counter stays 8 bytes.
  EXPECT_EQ(r.buffers.bytes_at[0], 8 * 2 + 8);
  EXPECT_EQ(r.total.numel, 25);
  ASSERT_EQ(r.by_dtype.size(), 2u);
}

TEST(Params, ModuleRowsAddUpToTheTotal) {
  fp::Model m;
  m.tensors = {tensor("a.x.w", {3, 5}), tensor("a.y.w", {7}), tensor("b.w", {2, 2}),
               tensor("b.z.running_var", {2}, fp::DType::kFloat32, fp::TensorRole::kBuffer),
               tensor("top", {11})};
  fp::ParamOptions all;
  all.depth = -1;
  auto r = fp::params(m, all);
  // Tree order: (model), a, a.x, a.y, b, b.z
  std::vector<std::string> paths;
  for (const auto& row : r.modules) paths.push_back(row.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"", "a", "a.x", "a.y", "b", "b.z"}));
  // Each parent equals its children plus its own tensors: a = 15 + 7; b = 4 own + 2 buffer.
  EXPECT_EQ(r.modules[1].params.numel, 22);
  EXPECT_EQ(r.modules[4].params.numel, 4);
  EXPECT_EQ(r.modules[4].buffers.numel, 2);
  // The root is the total: 15 + 7 + 4 + 11 = 37 parameters.
  EXPECT_EQ(r.modules[0].params.numel, r.params.numel);
  EXPECT_EQ(r.params.numel, 37);
  int64_t depth1 = 0;
  for (const auto& row : r.modules)
    if (row.depth == 1) depth1 += row.params.numel;
  EXPECT_EQ(depth1 + 11, r.params.numel);  // + the top-level tensor "top"

  fp::ParamOptions shallow;
  shallow.depth = 1;
  EXPECT_EQ(fp::params(m, shallow).modules.size(), 3u);  // (model), a, b
  shallow.depth = 0;
  EXPECT_EQ(fp::params(m, shallow).modules.size(), 1u);
}

TEST(Roles, ByName) {
  EXPECT_EQ(fp::role_by_name("bn1.running_mean", fp::DType::kFloat32), fp::TensorRole::kBuffer);
  EXPECT_EQ(fp::role_by_name("bn1.running_var", fp::DType::kFloat16), fp::TensorRole::kBuffer);
  EXPECT_EQ(fp::role_by_name("bn1.num_batches_tracked", fp::DType::kInt64),
            fp::TensorRole::kBuffer);
  EXPECT_EQ(fp::role_by_name("position_ids", fp::DType::kInt64), fp::TensorRole::kBuffer);
  EXPECT_EQ(fp::role_by_name("bn1.weight", fp::DType::kFloat32), fp::TensorRole::kParameter);
}

TEST(Units, BinaryAndCommas) {
  // The seed: 33,762 fp32 parameters = 135,048 bytes = 135,048 / 1024 = 131.88 KiB = 0.13 MiB.
  EXPECT_EQ(fp::human_bytes(135048), "131.88 KiB");
  EXPECT_EQ(fp::human_bytes(1023), "1023 B");
  EXPECT_EQ(fp::human_bytes(1024), "1.00 KiB");
  EXPECT_EQ(fp::human_bytes(26953662464),
            "25.10 GiB");  // LLaMA-7B at fp32, the first seed's example
  EXPECT_EQ(fp::with_commas(33762), "33,762");
  EXPECT_EQ(fp::with_commas(-1234567), "-1,234,567");
  EXPECT_EQ(fp::with_commas(0), "0");
}

TEST(Print, JsonHasExactBytesAndCsvOneTable) {
  fp::ParamOptions o;
  o.precisions = {fp::Precision::kInt4};
  auto r = fp::params(two_conv(), o);
  fp::PrintOptions p;
  p.format = fp::Format::kJson;
  std::string json = fp::print_params(r, p);
  EXPECT_NE(json.find("\"bytes\": 19200"), std::string::npos);  // 4,800 x 4
  EXPECT_NE(json.find("\"int4\": 2400"), std::string::npos);    // 144/2 + 16/2 + 4608/2 + 32/2
  p.format = fp::Format::kCsv;
  std::string csv = fp::print_params(r, p);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "module,type,depth,parameters,buffers,bytes_stored,bytes_int4");
  EXPECT_NE(csv.find("conv1,,1,4640,0,18560,2320"), std::string::npos);  // 4,640 x 4; 4,640 / 2
  p.tensors = true;
  csv = fp::print_params(r, p);
  EXPECT_NE(csv.find("conv0.weight,\"[16, 1, 3, 3]\",float32,parameter,yes,144,576,72,"),
            std::string::npos);
  p.format = fp::Format::kMarkdown;
  EXPECT_NE(fp::print_params(r, p).find("| conv0.weight | [16, 1, 3, 3] |"), std::string::npos);
}

// The planner's run policy (footprint/memory.h), written once for the CLI, the C++ API and llm:
// torch.optim's _default_to_fused_or_foreach picks foreach only where every parameter is on CUDA,
// so "auto" is the for-loop on CPU; AdamW is the default, with torch.optim.AdamW's weight decay
// of 0.01; two iterations; the step counters are device tensors on CPU.
TEST(Planner, RunPolicy) {
  EXPECT_EQ(fp::plan_optimizer(fp::Target::kCpu, "adam", "auto").impl, fp::OptimizerImpl::kForLoop);
  EXPECT_EQ(fp::plan_optimizer(fp::Target::kCuda, "adam", "auto").impl,
            fp::OptimizerImpl::kForeach);
  EXPECT_EQ(fp::plan_optimizer(fp::Target::kCpu, "sgd", "fused").impl, fp::OptimizerImpl::kFused);
  auto cuda = fp::plan_training(fp::Target::kCuda, std::nullopt);
  EXPECT_EQ(cuda.optimizer.kind, fp::OptimizerKind::kAdamW);
  EXPECT_EQ(cuda.optimizer.weight_decay, 0.01);
  EXPECT_EQ(cuda.iterations, 2);
  EXPECT_FALSE(cuda.counters_on_device);
  EXPECT_TRUE(fp::plan_training(fp::Target::kCpu, std::nullopt).counters_on_device);
}

// The vocabularies (footprint/plan.h): each table parses its own names to its enum, in order, and a
// name it lacks is an OptionError that names the option neutrally and lists the choices.
TEST(Planner, VocabulariesParseTheirOwnNames) {
  for (fp::Vocabulary v : fp::kVocabularies) {
    const auto& cs = fp::choices(v);
    ASSERT_FALSE(cs.empty());
    for (size_t i = 0; i < cs.size(); ++i) {
      EXPECT_EQ(fp::choose(v, cs[i].name), int(i)) << cs[i].name;
      EXPECT_FALSE(cs[i].help.empty()) << cs[i].name;
    }
  }
  EXPECT_EQ(fp::choice_list(fp::Vocabulary::kPrecision), "fp32, fp16, bf16, bf16-amp or fp16-amp");
  EXPECT_EQ(fp::precision_mode_parse("bf16-amp"), fp::PrecisionMode::kBf16Amp);
  EXPECT_EQ(fp::precision_mode_name(fp::PrecisionMode::kFp16Amp), "fp16-amp");
  EXPECT_EQ(fp::sharding_parse("fsdp"), fp::Sharding::kFsdp);
  EXPECT_EQ(fp::attention_parse("sdpa"), fp::AttentionImpl::kSdpa);
  EXPECT_EQ(fp::loss_parse("mean-square"), fp::LossKind::kMeanSquare);
  EXPECT_FALSE(fp::precision_mode_parse("fp8"));
  // As torch.optim writes its classes: "AdamW" is adamw.
  EXPECT_EQ(fp::choose(fp::Vocabulary::kOptimizer, "AdamW"), 4);
  try {
    fp::choose(fp::Vocabulary::kPrecision, "fp8");
    FAIL() << "fp8 is not a training precision";
  } catch (const fp::OptionError& e) {
    EXPECT_STREQ(e.what(), "`precision` 'fp8': expected fp32, fp16, bf16, bf16-amp or fp16-amp");
  }
  EXPECT_THROW(fp::parse_optimizer("rmsprop", "fused"), fp::OptionError);
}

// Library messages name options between backquotes; each front end words them its own way.
TEST(Planner, OptionsAreWordedPerFrontEnd) {
  const std::string m = "`gpu` 'h1000': not a GPU footprint knows";
  EXPECT_EQ(fp::word_options(m, fp::FrontEnd::kCommandLine),
            "--gpu 'h1000': not a GPU footprint knows");
  EXPECT_EQ(fp::word_options(m, fp::FrontEnd::kPython), "gpu='h1000': not a GPU footprint knows");
  const std::string n = "`gpus` 8 cannot hold groups of `tp` 3; pass `gpu`";
  EXPECT_EQ(fp::word_options(n, fp::FrontEnd::kCommandLine),
            "--gpus 8 cannot hold groups of --tp 3; pass --gpu");
  EXPECT_EQ(fp::word_options(n, fp::FrontEnd::kPython),
            "gpus=8 cannot hold groups of tp=3; pass gpu=");
  // A name the table does not know, and an unpaired backquote, stay as they are.
  EXPECT_EQ(fp::word_options("`foo` and `bar", fp::FrontEnd::kPython), "`foo` and `bar");
}

// The sharding plan of one rank, by hand. A layer of 1,000 bf16 parameters, all trainable (2,000
// B), under ZeRO-3 over 8 GPUs in tensor-parallel groups of 2: 4 data-parallel ranks divide the
// parameters, gradients and optimizer state; the gathered working set is the layer's gradients
// before the reduce-scatter (2,000 B) and two layers of parameters (the one computed and the one
// prefetched: 2 x 2,000 B), 6,000 B. Under autocast the layer is fp32 (4,000 B) and gathered in
// 16 bits: 4,000 + 2 x 2 x 1,000 = 8,000 B, and the weight casts are dropped.
TEST(Planner, ShardingPlanByHand) {
  fp::LayerTensors bf16{1000, 2000, 2000}, fp32{1000, 4000, 4000};
  auto p = fp::plan_sharding(fp::Sharding::kZero3, 8, 2, false, bf16);
  EXPECT_EQ(p.divisor[int(fp::Category::kParameters)], 4);
  EXPECT_EQ(p.divisor[int(fp::Category::kGradients)], 4);
  EXPECT_EQ(p.divisor[int(fp::Category::kOptimizerState)], 4);
  EXPECT_EQ(p.divisor[int(fp::Category::kActivations)], 1);
  EXPECT_EQ(p.gathered, 6000);
  EXPECT_FALSE(p.drop_weight_casts);
  auto amp = fp::plan_sharding(fp::Sharding::kFsdp, 8, 2, true, fp32);
  EXPECT_EQ(amp.gathered, 8000);
  EXPECT_TRUE(amp.drop_weight_casts);
  // ZeRO-1 divides the optimizer's state only and gathers nothing; ZeRO-2 holds the gradients.
  auto z1 = fp::plan_sharding(fp::Sharding::kZero1, 8, 1, false, bf16);
  EXPECT_EQ(z1.divisor[int(fp::Category::kOptimizerState)], 8);
  EXPECT_EQ(z1.divisor[int(fp::Category::kGradients)], 1);
  EXPECT_EQ(z1.gathered, 0);
  EXPECT_EQ(fp::plan_sharding(fp::Sharding::kZero2, 8, 1, false, bf16).gathered, 2000);
  // One data-parallel rank shards nothing.
  EXPECT_EQ(fp::plan_sharding(fp::Sharding::kZero3, 2, 2, false, bf16).gathered, 0);
}

// One RunPlan out: names to the run, and the options' mistakes as OptionError.
TEST(Planner, RunPlan) {
  fp::RunRequest q;
  q.train = true;
  q.precision = "bf16-amp";
  q.gpu = "a100-40gb";
  fp::RunPlan p = fp::plan_run(q);
  EXPECT_EQ(p.target, fp::Target::kCuda);
  EXPECT_EQ(p.cuda.sm, 80);  // an A100: compute capability 8.0
  EXPECT_EQ(p.precision.autocast, fp::DType::kBFloat16);
  EXPECT_FALSE(p.precision.parameters);
  ASSERT_TRUE(p.training);
  EXPECT_EQ(p.training->optimizer.impl, fp::OptimizerImpl::kForeach);
  EXPECT_EQ(fp::plan_precision(fp::PrecisionMode::kFp16).parameters, fp::DType::kFloat16);
  // On the CPU a size is the memory to fit in; a GPU's name is a mistake.
  q.device = "cpu";
  q.gpu = "64GiB";
  EXPECT_EQ(fp::plan_run(q).memory.capacity, int64_t(64) << 30);
  EXPECT_EQ(fp::plan_run(q).training->optimizer.impl, fp::OptimizerImpl::kForLoop);
  q.gpu = "h100";
  EXPECT_THROW(fp::plan_run(q), fp::OptionError);
  // The loss policy: cross-entropy for a 2-D floating output with labels, else mean-square.
  EXPECT_EQ(fp::resolve_loss(fp::LossKind::kAuto, 2, true, true), fp::LossKind::kCrossEntropy);
  EXPECT_EQ(fp::resolve_loss(fp::LossKind::kAuto, 3, true, true), fp::LossKind::kMeanSquare);
  EXPECT_EQ(fp::resolve_loss(fp::LossKind::kAuto, 2, false, true), fp::LossKind::kMeanSquare);
  // An LLM run's checks.
  fp::LlmScenario c;
  c.gpus = 8;
  c.tp = 3;
  EXPECT_THROW(fp::check_llm(c), fp::OptionError);
  c.tp = 2;
  c.sharding = fp::Sharding::kZero3;
  EXPECT_THROW(fp::check_llm(c), fp::OptionError);  // sharding needs a training step
  c.train = true;
  EXPECT_NO_THROW(fp::check_llm(c));
}

// What the fit search aims with: on CUDA the allocated peak plus the overhead outside the
// allocator (1,000 + 24 = 1,024 bytes); on CPU the peak. A report without a capacity never fits.
TEST(Planner, FitNeedAndFits) {
  fp::MemoryReport r;
  r.target = fp::Target::kCuda;
  r.allocator.allocated_peak = 1000;
  r.device_overhead = 24;
  r.peak.bytes = 7;
  EXPECT_EQ(fp::fit_need(r), 1024);
  EXPECT_FALSE(fp::fits(r));
  r.fits = true;
  EXPECT_TRUE(fp::fits(r));
  r.target = fp::Target::kCpu;
  EXPECT_EQ(fp::fit_need(r), 7);
}

// The HTML page embeds names from the model file (ops, modules): one that spells "</script>" or
// "<!--" must stay data. Every "<" in the data is written as \u003c, so the page keeps exactly
// its template's one "</script>".
TEST(MemoryViz, NamesFromTheFileStayData) {
  fp::MemoryReport r;
  auto t = std::make_shared<fp::MemoryTimeline>();
  t->ops = {"</script><!--<script>alert(1)"};
  t->modules = {{"</script>", "X"}};
  fp::MemoryTimeline::Step s;
  s.op = 0;
  s.module = 0;
  s.allocated = 512;
  t->steps.push_back(s);
  r.timeline = t;
  r.peak.op = t->ops[0];
  std::string page = fp::memory_html(r);
  size_t closes = 0;
  for (size_t at = page.find("</script>"); at != std::string::npos;
       at = page.find("</script>", at + 1))
    ++closes;
  EXPECT_EQ(closes, 1u);
  EXPECT_NE(page.find("\\u003c/script>\\u003c!--"), std::string::npos);
  EXPECT_EQ(page.find("<!--<script>"), std::string::npos);
}
